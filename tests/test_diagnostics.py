"""Diagnostics that tell the whole truth (issue 18, items 6-8): inspect shows every fate even
when the plan is refused, each message is true for the run it describes, the tar's README and
manifest name the chain the tar holds, tars are 0644, and the test suite keeps to itself."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest

from qa2core.testing import tree_state, write_tree

REPO = Path(__file__).resolve().parents[1]
MANUAL = {
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "Imaging/target.pb.fits": bytes(2880),
    "casa-20160101-000000.log": "log\n",
}
UIDS = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
CHAIN = "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69"
PLACEHOLDERS = "sg_ouss_id/group_ouss_id/member_ouss_id"


@pytest.fixture
def src(tmp_path, request):
    root = write_tree(tmp_path / "reduction", MANUAL)
    before = tree_state(root)
    yield root
    assert tree_state(root) == before, "the source changed"


@pytest.fixture
def dst(tmp_path):
    return tmp_path / "2015.1.00123.S"


def _other_sb(tmp_path: Path) -> Path:
    """Another SB of the same project: its own EB."""
    files = {k.replace("X1_X2", "X1_X9"): v for k, v in MANUAL.items()}
    return write_tree(tmp_path / "other", files)


def _package(run_qa2, src, dst, piscript, *more):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", *more)
    assert r.exit_code == 0, r.stderr
    return r


def _errors(result) -> list[str]:
    assert "Traceback" not in result.stderr + result.stdout
    return [line for line in result.stderr.splitlines() if line.startswith("qa2: error: ")]


# ------------------------------------------------------------------- inspect: the whole picture


def test_inspect_shows_every_fate_when_the_plan_clashes(run_qa2, tmp_path):
    root = write_tree(tmp_path / "clash", {**MANUAL, "Other/target.pb.fits": bytes(2880)})
    r = run_qa2("inspect", root)
    assert r.exit_code == 1, r.stderr
    for shown in ("casa-20160101-000000.log", "scriptForImaging.py", "target.image.pbcor.fits",
                  "uid___A002_X1_X2.ms.scriptForCalibration.py"):
        assert shown in r.stdout, r.stdout
    clash = [line for line in r.stdout.splitlines() if "[plan.clash]" in line]
    assert len(clash) == 2 and {"Imaging/target.pb.fits", "Other/target.pb.fits"} == {
        line.split()[0] for line in clash}, r.stdout
    assert all("REFUSED" in line and "product/target.pb.fits.gz" in line for line in clash)
    errors = _errors(r)
    assert len(errors) == 1 and "two sources for one destination" in errors[0], r.stderr

    out = run_qa2("inspect", root, "--json")
    assert out.exit_code == 1
    seen = json.loads(out.stdout)
    assert seen["errors"] and "[plan.clash]" in seen["errors"][0]
    fates = {i["relpath"]: i["fate"] for i in seen["items"]}
    assert len(fates) == 6
    assert fates["Other/target.pb.fits"][0]["problem"].endswith("[plan.clash]")
    assert "problem" not in fates["Imaging/scriptForImaging.py"][0]


def test_inspect_of_a_sound_plan_exits_0_with_no_errors(run_qa2, src):
    r = run_qa2("inspect", src, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["errors"] == []


# ------------------------------------------------------------------- each message true


def _skip_reasons(run_qa2, src, dst, piscript, *more) -> list[str]:
    r = run_qa2("package", src, dst, "--piscript", piscript, "--dry-run", "--json", *more)
    assert r.exit_code == 0, r.stderr
    return [s["reason"] for s in json.loads(r.stdout)["skipped"]
            if s["source"].endswith("README.header.txt")]


def test_readme_header_reason_says_what_became_of_it(run_qa2, tmp_path, dst, piscript, header):
    root = write_tree(tmp_path / "withheader", {**MANUAL,
                                                "README.header.txt": header.read_bytes()})
    given = _skip_reasons(run_qa2, root, dst, piscript, "--readme", root / "README.header.txt")
    assert given == ["README header given with --readme: its text heads README, not shipped as "
                     "a file"]
    other = _skip_reasons(run_qa2, root, dst, piscript, "--readme", header)
    assert len(other) == 1 and "not used" in other[0] and str(header) in other[0]
    assert "pass it with --readme" not in given[0] + other[0]
    assert _skip_reasons(run_qa2, root, dst, piscript) == ["README header: pass it with --readme"]


def test_append_member_onto_real_names_says_what_to_give(run_qa2, src, dst, piscript, tmp_path):
    _package(run_qa2, src, dst, piscript, "--ous-uids", UIDS)
    other = _other_sb(tmp_path)
    r = run_qa2("package", other, dst, "--piscript", piscript, "--mode", "copy",
                "--append", "member")
    assert r.exit_code == 1
    (line,) = _errors(r)
    assert "none found" not in line
    assert CHAIN.rsplit("/", 1)[0] in line and "[append.ous_uids]" in line
    assert "--ous-uids uid://A001/X87c/X67,uid://A001/X87c/X68,<MOUS>" in line
    assert sorted(p.name for p in (dst / CHAIN).parent.iterdir()) == [CHAIN.rsplit("/", 1)[1]]
    r = run_qa2("package", other, dst, "--piscript", piscript, "--mode", "copy",
                "--append", "group")
    assert r.exit_code == 1 and "[append.ous_uids]" in _errors(r)[0]
    assert not (dst / "sg_ouss_id").exists()
    # as the message says: the chain's SOUS and GOUS, the new SB's MOUS
    _package(run_qa2, other, dst, piscript, "--append", "member", "--ous-uids",
             "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X70")
    assert (dst / CHAIN).parent.joinpath("member.uid___A001_X87c_X70", "README").is_file()


def test_append_member_with_nothing_there_still_says_none(run_qa2, src, dst, piscript):
    r = run_qa2("package", src, dst, "--piscript", piscript, "--append", "member")
    assert r.exit_code == 1 and "none found" in _errors(r)[0]


def test_json_bytes_and_written_bytes(run_qa2, src, dst, piscript, header):
    r = _package(run_qa2, src, dst, piscript, "--readme", header, "--json")
    files = {f["dest"]: f for f in json.loads(r.stdout)["files"]}
    member = dst / PLACEHOLDERS
    for rel, f in files.items():
        assert f["written_bytes"] == (dst / rel).stat().st_size, rel
    pb = files[f"{PLACEHOLDERS}/product/target.pb.fits.gz"]
    assert pb["bytes"] == 2880 and pb["written_bytes"] < 2880  # the source's, the gzip's
    readme = files[f"{PLACEHOLDERS}/README"]
    assert readme["bytes"] == readme["written_bytes"] == (member / "README").stat().st_size

    dry = run_qa2("package", src, dst, "--piscript", piscript, "--readme", header, "--dry-run",
                  "--json", "--ous-uids", UIDS, "--mode", "copy")
    planned = {f["action"]: f for f in json.loads(dry.stdout)["files"]}
    assert all(f["written_bytes"] is None for f in json.loads(dry.stdout)["files"])
    real = _package(run_qa2, src, dst, piscript, "--readme", header, "--json", "--ous-uids", UIDS)
    made = {f["action"]: f for f in json.loads(real.stdout)["files"]}
    assert planned["readme"]["bytes"] == made["readme"]["bytes"]  # the dry run's README names
    assert (dst / CHAIN / "README").stat().st_size == made["readme"]["bytes"]  # the real member


def test_writing_and_wrote_lines_count_the_same_things(run_qa2, src, dst, piscript):
    r = _package(run_qa2, src, dst, piscript)
    writing = re.search(r"writing (\d+) entries in mode copy \((\d+) source bytes\)", r.stderr)
    wrote = re.search(r"wrote (\d+) entries \((\d+) source bytes\) and the README; (\d+) bytes "
                      r"written", r.stderr)
    assert writing and wrote, r.stderr
    assert writing.groups() == wrote.groups()[:2]
    on_disk = sum(p.stat().st_size for p in (dst / PLACEHOLDERS).rglob("*") if p.is_file())
    assert int(wrote.group(3)) == on_disk


def test_duplicate_append_member_is_refused_unless_forced(run_qa2, src, dst, piscript, tmp_path):
    _package(run_qa2, src, dst, piscript)
    manifest_before = (dst / "manifest-sha256.txt").read_bytes()
    r = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy",
                "--append", "member")
    assert r.exit_code == 1
    (line,) = _errors(r)
    assert f"{dst / PLACEHOLDERS}: already holds EB(s) uid___A002_X1_X2" in line
    assert line.endswith("[append.duplicate]") and "--force" in line
    assert not (dst / "sg_ouss_id/group_ouss_id/member_ouss_2_id").exists()
    assert (dst / "manifest-sha256.txt").read_bytes() == manifest_before
    dry = run_qa2("package", src, dst, "--piscript", piscript, "--mode", "copy",
                  "--append", "member", "--dry-run")
    assert dry.exit_code == 1 and "[append.duplicate]" in dry.stderr  # the rehearsal says so too

    forced = _package(run_qa2, src, dst, piscript, "--append", "member", "--force")
    assert (dst / "sg_ouss_id/group_ouss_id/member_ouss_2_id/README").is_file()
    assert "[append.duplicate]" in forced.stderr and "--force" in forced.stderr
    _package(run_qa2, _other_sb(tmp_path), dst, piscript, "--append", "member")  # another SB
    assert (dst / "sg_ouss_id/group_ouss_id/member_ouss_3_id").is_dir()


def test_api_takes_force(src, dst, piscript):
    from qa2core import engine
    from qa2core.errors import Qa2Error

    engine.package(src, dst, piscript=piscript, mode="fake")
    with pytest.raises(Qa2Error, match=r"\[append.duplicate\]"):
        engine.package(src, dst, piscript=piscript, mode="fake", append="member")
    report = engine.package(src, dst, piscript=piscript, mode="fake", append="member", force=True)
    assert report.member.endswith("member_ouss_2_id")


# ------------------------------------------------------------------- the tar


def test_tar_readme_and_manifest_name_the_renamed_member(run_qa2, src, dst, piscript, header,
                                                           tmp_path):
    _package(run_qa2, src, dst, piscript, "--readme", header)
    r = run_qa2("tar", dst, "--ous-uids", UIDS, "--out", tmp_path)
    assert r.exit_code == 0, r.stderr
    (tar_path,) = tmp_path.glob("*.tar")
    with tarfile.open(tar_path) as tar:
        text = tar.extractfile(f"{dst.name}/{CHAIN}/README").read()
        listed = tar.extractfile(f"{dst.name}/manifest-sha256.txt").read().decode()
        names = [m.name for m in tar.getmembers() if m.isfile()]
    assert "\n\nmember.uid___A001_X87c_X69/\n" in text.decode()
    assert "member_ouss_id" not in text.decode()
    assert text.startswith(header.read_bytes())  # the reducer's header unchanged
    sums = dict(reversed(line.split("  ", 1)) for line in listed.splitlines())
    assert sums[f"{CHAIN}/README"] == hashlib.sha256(text).hexdigest()
    files = {n.split("/", 1)[1] for n in names} - {"manifest-sha256.txt"}
    assert set(sums) == files  # every file of the tar, by the name it has there
    # the package itself keeps its placeholder README
    assert b"\n\nmember_ouss_id/\n" in (dst / PLACEHOLDERS / "README").read_bytes()


def test_tar_of_the_extracted_tree_verifies(run_qa2, src, dst, piscript, header, tmp_path):
    _package(run_qa2, src, dst, piscript, "--readme", header)
    out = tmp_path / "tars"
    out.mkdir()
    assert run_qa2("tar", dst, "--ous-uids", UIDS, "--out", out).exit_code == 0
    (tar_path,) = out.glob("*.tar")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar_path) as tar:
        tar.extractall(unpacked, filter="data")
    r = run_qa2("verify", unpacked / dst.name)
    assert r.exit_code == 0, r.stderr + r.stdout


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_tar_and_its_sums_have_the_umask_mode(run_qa2, src, dst, piscript, tmp_path, mask, mode):
    _package(run_qa2, src, dst, piscript)
    out = tmp_path / "tars"
    out.mkdir()
    old = os.umask(mask)
    try:
        r = run_qa2("tar", dst, "--out", out)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.stderr
    made = sorted(out.iterdir())
    assert [p.suffix for p in made] == [".tar", ".md5sum", ".sha256"] or len(made) == 3
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == mode, (path, oct(path.stat().st_mode))


# ------------------------------------------------------------------- test hygiene


def test_no_test_asserts_a_duration():
    """Timing checks live in `make bench` (bench/run.py): a loaded machine must not fail
    `make test`. A deadline that only stops a hung wait is not a timing check."""
    suites = [REPO / "tests", *(REPO / "plugins").glob("*/tests"), REPO / "examples"]
    offenders = [str(p.relative_to(REPO)) for suite in suites for p in suite.rglob("test*.py")
                 if "perf_counter" in p.read_text() and p.name != "test_diagnostics.py"]
    assert offenders == []
    assert "HELP_MAX_S" in (REPO / "bench" / "run.py").read_text()


def test_make_test_runs_every_suite_and_reports_them_all():
    recipe = (REPO / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "exit 1; done" not in recipe and "|| exit 1" not in recipe
    for suite in ("tests", "$(PLUGINS)", "$(EXAMPLES)", "lint"):
        assert suite in recipe
    examples = (REPO / "Makefile").read_text().split("\nEXAMPLES := ", 1)[1].split("\n", 1)[0]
    assert set(examples.split()) == {f"examples/{p.name}" for p in (REPO / "examples").iterdir()
                                     if (p / "pyproject.toml").is_file()}
    assert "FAILED" in recipe
