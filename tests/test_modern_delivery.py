"""Cycle >= 5 deliveries (issue 22): member-prefixed names, the modern README, product and
auxiliary tars, verify's naming rules and the era qa2 detect names; through the qa2 command, on
the sample pipeline run and the sample manual reduction (real MSs, CASA tables and FITS)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa2core.planning import naming
from qa2core.testing import sampledata as sd

AUX_UIDS = ",".join(u.replace("uid___", "uid://", 1).replace("_", "/") for u in sd.AUX_OUS)
MANUAL_UIDS = "uid://A001/X87c/X68,uid://A001/X87c/X69,uid://A001/X87c/X6a"
TOKEN = "member." + sd.AUX_OUS[2]


def _qa2(*args):
    """The qa2 command, in process (typer's runner), as a user runs it."""
    from typer.testing import CliRunner

    from qa2core.cli import app
    from qa2core.testing import Qa2Result

    result = CliRunner().invoke(app, [str(a) for a in args])
    return Qa2Result(result.exit_code, result.stdout, result.stderr)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _member(pack: Path) -> Path:
    (member,) = pack.glob("*/*/member*")
    return member


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("modern")
    built = sd.build_auxproducts_run(base / "run")
    header = base / "header.txt"
    header.write_text(f"Cycle: 5\nProject code: {built.project}\nPI name: A. Reducer\n")
    pi = base / "pi" / "scriptForPI.py"
    pi.parent.mkdir()
    pi.write_text("# $Id: scriptForPI.py,v 1.34 2022/08/26 dpetry Exp $\nprint('PI')\n")
    return built, header, pi, base


@pytest.fixture(scope="module")
def packaged(run, tmp_path_factory):
    """The sample pipeline run packaged in copy mode with style cycle5-pipe, UIDs derived."""
    built, header, pi, _base = run
    pack = tmp_path_factory.mktemp("p") / built.project
    got = _qa2("package", built.root, pack, "--style", "cycle5-pipe", "--mode",
                                "copy", "--piscript", pi, "--readme", header, "--json")
    assert got.exit_code == 0, got.stderr
    return pack, json.loads(got.stdout)


def test_a_pipeline_run_is_packaged_with_member_prefixed_names(packaged):
    pack, report = packaged
    member = _member(pack)
    assert member.relative_to(pack).as_posix() == "/".join(
        [f"science_goal.{sd.AUX_OUS[0]}", f"group.{sd.AUX_OUS[1]}", TOKEN])
    files = _files(member)
    m = sd.AUX_OUS[2]
    for name in (f"{TOKEN}.README.txt", f"script/{TOKEN}.scriptForPI.py",
                 f"qa/{TOKEN}.hifa_calimage.weblog.tgz",
                 f"script/{TOKEN}.hifa_calimage.casa_pipescript.py",
                 f"script/{TOKEN}.hifa_calimage.pipeline_manifest.xml",
                 f"calibration/{TOKEN}.auxproducts.tgz",
                 f"product/{TOKEN}.Orion_sci.spw25.cube.I.pbcor.fits"):
        assert name in files, name
    assert not [f for f in files if f.rsplit("/", 1)[-1].startswith(m + ".")]  # all renamed
    eb = sd.AUX_EBS[0]
    assert f"calibration/{eb}.ms.flagversions.tgz" in files  # named after the EB: kept
    assert "README" not in files and "script/scriptForPI.py" not in files
    assert report["files"][0]["dest"].endswith(f"/{TOKEN}/{TOKEN}.README.txt")


def test_the_pipeline_manifest_names_the_renamed_files_and_only_changes_them(packaged, run):
    pack, _ = packaged
    built = run[0]
    member = _member(pack)
    (manifest,) = member.glob("script/*pipeline_manifest.xml")
    original = next(built.products.glob("*pipeline_manifest.xml")).read_bytes()
    shipped = manifest.read_bytes()
    named = re.findall(rb'name="([^"]+\.(?:tgz|txt))"', shipped)
    assert named and all((member / "calibration" / n.decode()).is_file() for n in named)
    assert shipped.replace(f'"{TOKEN}.'.encode(), f'"{sd.AUX_OUS[2]}.'.encode()) == original
    # the manifest's sha256 in manifest-sha256.txt is that of the rewritten bytes
    listed = (pack / "manifest-sha256.txt").read_text()
    assert hashlib.sha256(shipped).hexdigest() in listed


def test_the_modern_readme_lists_only_what_the_package_holds(packaged):
    pack, _ = packaged
    text = (_member(pack) / f"{TOKEN}.README.txt").read_text()
    assert text.startswith("Cycle: 5\nProject code: 2017.1.00271.S\n")  # the reducer's header
    for heading in ("HOW TO\n======", "DATA CATEGORIES\n===============", "FILES\n====="):
        assert heading in text
    assert f"casa --pipeline -c {TOKEN}.scriptForPI.py" in text
    assert "* product " in text and "qa2_report" not in text  # no QA2 report in this run


def test_verify_and_detect_know_the_modern_package(packaged, tmp_path):
    pack, _ = packaged
    qa2 = _qa2
    got = qa2("verify", pack, "--for-ingestion")
    assert got.exit_code == 0, got.stderr
    got = qa2("detect", pack, "--json")
    assert json.loads(got.stdout)["style"] == "cycle5-pipe"
    assert "era Cycle >= 5 (member-prefixed names)" in json.loads(got.stdout)["claims"][0]["reason"]
    got = qa2("styles", "--json")
    rows = {r["name"]: r for r in json.loads(got.stdout)["styles"]}
    assert rows["cycle5-pipe"]["member_prefix"] and rows["cycle4-pipe"]["member_prefix"] is False
    assert all(rows[n]["source"] for n in ("cycle5-pipe", "cycle5-nopipe", "cycle10-pipe"))


def test_the_tars_untar_together_into_the_verified_package(packaged, tmp_path):
    pack, _ = packaged
    qa2 = _qa2
    out = tmp_path / "tars"
    out.mkdir()
    got = qa2("tar", pack, "--out", out, "--max-size", str(1.5 * 2**10 / 2**30))  # 1.5 kB volumes
    assert got.exit_code == 0, got.stderr
    mous = sd.AUX_OUS[2]
    volumes = sorted(out.glob(f"{pack.name}_{mous}_*_of_*.tar"))
    assert len(volumes) == 3  # the three FITS, one per volume at this size
    assert [v.name for v in volumes][-1] == f"{pack.name}_{mous}_003_of_003.tar"
    aux = out / f"{pack.name}_{mous}_auxiliary.tar"
    for tar in (*volumes, aux):
        for tool, suffix in (("sha256sum", ".sha256"), ("md5sum", ".md5sum")):
            subprocess.run([tool, "-c", tar.name + suffix], cwd=out, check=True, capture_output=True)
    for volume in volumes:  # FITS only in the product volumes, none in the auxiliary tar
        with tarfile.open(volume) as t:
            assert all(n.lower().endswith((".fits", ".fits.gz")) for n in t.getnames()
                       if t.getmember(n).isfile())
    with tarfile.open(aux) as t:
        assert not [n for n in t.getnames() if n.lower().endswith((".fits", ".fits.gz"))]
        assert f"{pack.name}/manifest-sha256.txt" in t.getnames()
    assert (out / f"{TOKEN}.README.txt").read_bytes() == (_member(pack) / f"{TOKEN}.README.txt").read_bytes()
    untarred = tmp_path / "untarred"
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as t:
            t.extractall(untarred, filter="data")
    again = untarred / pack.name
    assert _files(again) == _files(pack)
    assert all((again / f).read_bytes() == (pack / f).read_bytes() for f in _files(pack))
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=again, check=True)
    assert qa2("verify", again, "--for-ingestion").exit_code == 0


def test_verify_refuses_names_of_another_member_leftover_tokens_and_missing_manifest_files(
        packaged, tmp_path):
    import shutil

    pack, _ = packaged
    qa2 = _qa2
    cases = {
        "names.member_prefix": ("qa/{T}.hifa_calimage.weblog.tgz",
                                "qa/member.uid___A001_X1284_X9999.hifa_calimage.weblog.tgz"),
        "names.placeholder": ("log/{T}.hifa_calimage.casa_commands.log",
                              "log/member_ouss_id.hifa_calimage.casa_commands.log"),
        "script.manifest": ("calibration/{T}.auxproducts.tgz", "calibration/aux.tgz"),
    }
    for rule, (old, new) in cases.items():
        copy = tmp_path / rule / pack.name
        shutil.copytree(pack, copy)
        member = _member(copy)
        (member / old.format(T=TOKEN)).rename(member / new)
        got = qa2("verify", copy)
        assert got.exit_code == 1 and f"[{rule}]" in got.stderr, (rule, got.stderr)
        assert new.rsplit("/", 1)[-1] in got.stderr or "aux" in got.stderr


@pytest.fixture(scope="module")
def manual(manual_sample):
    return manual_sample


def test_a_manual_reimaging_is_packaged_in_the_modern_shape_with_uids_given(manual, tmp_path):
    qa2 = _qa2
    pack = tmp_path / manual.project
    args = ("package", manual.root, pack, "--style", "cycle5-nopipe", "--mode", "copy",
            "--piscript", manual.piscript, "--readme", manual.readme_header)
    refused = qa2(*args)  # a manual reduction's names give no UIDs: it asks for them
    assert refused.exit_code == 1 and "[names.ous_uids]" in refused.stderr
    assert "--ous-uids SOUS,GOUS,MOUS" in refused.stderr and not pack.exists()
    got = qa2(*args, "--ous-uids", MANUAL_UIDS)
    assert got.exit_code == 0, got.stderr
    member = _member(pack)
    assert member.name == "member.uid___A001_X87c_X6a"
    files = _files(member)
    assert "member.uid___A001_X87c_X6a.README.txt" in files
    assert "script/member.uid___A001_X87c_X6a.scriptForPI.py" in files
    assert [f for f in files if f.endswith(".ms.scriptForCalibration.py")]  # EB names kept
    assert qa2("verify", pack, "--for-ingestion").exit_code == 0
    out = tmp_path / "tars"
    out.mkdir()
    assert qa2("tar", pack, "--out", out).exit_code == 0
    assert {p.name for p in out.glob("*.tar")} == {
        f"{manual.project}_uid___A001_X87c_X6a_001_of_001.tar",
        f"{manual.project}_uid___A001_X87c_X6a_auxiliary.tar"}
    untarred = tmp_path / "untarred"
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as t:
            t.extractall(untarred, filter="data")
    assert _files(untarred / manual.project) == _files(pack)
    subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=untarred / manual.project,
                   check=True)
    assert qa2("verify", untarred / manual.project, "--for-ingestion").exit_code == 0


def test_placeholders_rename_mechanically_into_the_real_package(run, tmp_path):
    """--ous-uids placeholders gives member_ouss_id names: replacing the tokens by the real
    names gives exactly the package made with the UIDs (docs/layout-rules.md)."""
    built, header, pi, _ = run
    qa2 = _qa2
    common = ("--style", "cycle5-pipe", "--mode", "copy", "--piscript", pi, "--readme", header)
    placeholders, real = tmp_path / "a" / built.project, tmp_path / "b" / built.project
    placeholders.parent.mkdir()
    real.parent.mkdir()
    assert qa2("package", built.root, placeholders, *common, "--ous-uids", "placeholders").exit_code == 0
    assert qa2("package", built.root, real, *common, "--ous-uids", AUX_UIDS).exit_code == 0
    sg, group, member = (f"science_goal.{sd.AUX_OUS[0]}", f"group.{sd.AUX_OUS[1]}", TOKEN)
    renamed = [f.replace("sg_ouss_id", sg).replace("group_ouss_id", group)
               .replace("member_ouss_id", member) for f in _files(placeholders)]
    assert sorted(renamed) == _files(real)
    refused = qa2("tar", placeholders, "--out", tmp_path)
    assert refused.exit_code == 1 and "[tar.placeholder]" in refused.stderr


def test_a_rehearsal_without_uids_uses_placeholders_and_says_so(manual, tmp_path):
    pack = tmp_path / manual.project
    got = _qa2("package", manual.root, pack, "--style", "cycle10-nopipe",
                                "--piscript", manual.piscript, "--readme", manual.readme_header)
    assert got.exit_code == 0 and "[names.ous_uids]" in got.stderr
    assert (_member(pack) / "member_ouss_id.README.txt").exists()


MOUS = st.from_regex(r"uid___A00[12]_X[0-9a-f]{1,4}_X[0-9a-f]{1,4}", fullmatch=True)
NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,20}", fullmatch=True)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mous=MOUS, other=MOUS, rest=NAME, folder=st.sampled_from(["qa", "script", "product", ""]))
def test_member_file_names_rename_only_the_members_own_prefix(mous, other, rest, folder):
    token = "member." + mous
    dest = f"{folder}/{mous}.{rest}" if folder else f"{mous}.{rest}"
    renamed = naming.rename_dest(dest, mous, token)
    assert renamed.rpartition("/")[2] == f"{token}.{rest}"
    assert naming.rename_dest(renamed, mous, token) == renamed  # once is enough
    back = renamed.replace(token, naming.PLACEHOLDER_TOKEN)
    assert back == naming.rename_dest(dest, mous, naming.PLACEHOLDER_TOKEN)  # mechanical
    if other != mous:
        kept = f"{folder}/{other}.{rest}" if folder else f"{other}.{rest}"
        assert naming.rename_dest(kept, mous, token) == kept  # an EB's or another member's name
    assert naming.rename_dest(dest, mous, None) == dest  # older styles: names unchanged
