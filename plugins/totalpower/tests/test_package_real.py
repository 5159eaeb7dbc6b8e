"""Packaging a real manual TP reduction (real MSs, caltables, CASA image, FITS, ASDMs) through the
``qa2`` command in-process, with the installed plugins competing for it, in every mode."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qa2core import OVERRIDE, engine
from qa2core.testing import files_below, tree_state

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
IF_SCRIPT = "uid___A002_Xb8e115_X1e3b.ms.scriptForCalibration.py"


def expected(ebs) -> set[str]:
    return {
        "README", "calibration/jyperk.csv",
        *(f"calibration/{eb}.calibration.tgz" for eb in ebs),
        *(f"script/{eb}.ms.scriptForSDCalibration.py" for eb in ebs),
        *(f"qa/{eb}.ms.tsys.spw17.png" for eb in ebs),
        "script/scriptForSDimaging.py", "script/scriptForPI.py", "qa/textfile.txt",
        "product/M100_TP_spw17.image.fits", "product/M100_TP_spw17.sd.im.fits",
        "log/casa-20170612-101502.log", "log/casa-20170612-111502.log",
        "log/casa-20170613-091000.log",
    }


@pytest.fixture
def package(run_qa2, tmp_path):
    """``qa2 package SRC PACKPATH --json ...``; proves afterwards that every source is unchanged."""
    before: dict[Path, dict] = {}
    dst = tmp_path / "out" / "2016.1.00234.S"
    dst.parent.mkdir()

    def run(sample, *args, expect=0):
        before.setdefault(sample.root, tree_state(sample.root))
        r = run_qa2("package", sample.root, dst, "--readme", sample.readme_header,
                    "--piscript", sample.piscript.parent, "--json", *args)
        assert r.exit_code == expect, r.stderr
        return r, json.loads(r.stdout), dst

    yield run
    for root, state in before.items():
        assert tree_state(root) == state, f"the source {root} changed"


def _by_dest(report: dict) -> dict[str, dict]:
    return {f["dest"].split(f"{report['member']}/", 1)[1]: f for f in report["files"]}


def test_installed_plugins_let_totalpower_claim(tp_sample, run_qa2):
    r = run_qa2("detect", tp_sample.root, "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["plugin"] == "totalpower" and out["claims"][0]["score"] == OVERRIDE
    text = run_qa2("detect", tp_sample.root)
    assert text.stdout.split()[0] == "totalpower"


def test_engine_with_only_the_totalpower_plugin(tp_sample, tp_pm, tmp_path):
    before = tree_state(tp_sample.root)
    dst = tmp_path / tp_sample.project
    report = engine.package(tp_sample.root, dst, readme_path=tp_sample.readme_header,
                            piscript=tp_sample.piscript, style="cycle2-nopipe", mode="copy",
                            plugins=tp_pm)
    assert report.plugin == "totalpower" and not report.errors and not report.unclassified
    assert files_below(dst / report.member) == expected(tp_sample.ebs)
    assert tree_state(tp_sample.root) == before


def test_fake_tree_has_real_names_and_empty_files(package, tp_sample):
    _r, report, dst = package(tp_sample)
    assert report["plugin"] == "totalpower" and report["mode"] == "fake"
    assert report["errors"] == [] and report["unclassified"] == []
    assert [f for f in report["findings"] if f["level"] != "INFO"] == []
    member = dst / MEMBER
    names = files_below(member)
    assert names == expected(tp_sample.ebs)
    for name in names - {"README"}:
        assert (member / name).stat().st_size == 0, name
    readme = (member / "README").read_bytes()
    assert readme.startswith(tp_sample.readme_header.read_bytes())
    assert b"uid___A002_Xc4f3ae_X57a5.calibration.tgz" in readme and b"sd.im.fits" in readme
    assert b"scriptForImaging.py" not in readme  # no dummy imaging script for TP
    ticket = dst.with_name(dst.name + ".ticket.zip")
    assert ticket.is_file() and ticket.stat().st_size == 0
    assert not (dst / "manifest-sha256.txt").exists()


def test_ticket_zip_has_readme_scripts_qa_and_size(package, tp_sample):
    _r, report, dst = package(tp_sample, "--mode", "ticket")
    member = dst / MEMBER
    assert Path(report["ticket"]) == dst.with_name(dst.name + ".ticket.zip")
    ebs = tp_sample.ebs
    with zipfile.ZipFile(report["ticket"]) as zf:
        names = set(zf.namelist())
        assert names >= {"README", "package_size.txt", "script/scriptForPI.py",
                         "script/scriptForSDimaging.py", "qa/textfile.txt",
                         *(f"script/{eb}.ms.scriptForSDCalibration.py" for eb in ebs),
                         *(f"qa/{eb}.ms.tsys.spw17.png" for eb in ebs)}
        assert not any(n.startswith(("product/", "calibration/", "log/")) for n in names)
        cal = zf.read(f"script/{ebs[0]}.ms.scriptForSDCalibration.py")
        assert cal == (tp_sample.root / f"Calibration_X57a5/{ebs[0]}.ms.scriptForSDCalibration.py"
                       ).read_bytes()
        assert b"# Jy/K factors: spw17 XX 43.2" in cal and b"jyperk = \\" in cal
        assert zf.read("README") == (member / "README").read_bytes()
        assert b"Expected size of the package" in zf.read("package_size.txt")
    assert (member / "product/M100_TP_spw17.sd.im.fits").stat().st_size == 0  # fake tree


def test_copy_mode_bytes_tables_and_manifest(package, tp_sample, tmp_path):
    _r, report, dst = package(tp_sample, "--mode", "copy")
    member = dst / MEMBER
    copies = [f for f in report["files"] if f["action"] == "copy"]
    assert len(copies) == 13  # 4 scripts, 3 logs, 3 qa, 2 FITS, jyperk.csv
    for f in copies:
        packed = dst / f["dest"]
        assert packed.read_bytes() == Path(f["source"]).read_bytes(), f["dest"]
    from astropy.io import fits

    src_fits = tp_sample.root / "Imaging/M100_TP_spw17.sd.im.fits"
    with fits.open(member / "product/M100_TP_spw17.sd.im.fits") as packed, fits.open(src_fits) as orig:
        assert np.array_equal(packed[0].data, orig[0].data)
        assert packed[0].header["INSTRUME"] == "ALMA-TP"
    # per-EB Tsys/sky tables, each under its own name, without lock files; they open in CASA.
    eb = tp_sample.ebs[0]
    with tarfile.open(member / f"calibration/{eb}.calibration.tgz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "x", filter="data")
    assert {n.split("/")[0] for n in names} == {f"{eb}.ms.sky", f"{eb}.ms.tsys"}
    assert not any(n.endswith("table.lock") for n in names)
    from qa2core.testing.casa import tools

    tb = tools().table()
    tb.open(str(tmp_path / f"x/{eb}.ms.tsys"))
    try:
        assert tb.nrows() > 0 and tb.getkeyword("MSName") == f"{eb}.ms"
    finally:
        tb.close()
    r = subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=dst,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert zipfile.is_zipfile(report["ticket"])


def test_noms_leaves_out_measurement_sets_and_asdms(package, tp_sample):
    _r, report, dst = package(tp_sample, "--mode", "copy")
    reasons = [s["reason"] for s in report["skipped"]]
    assert sum(r.startswith("measurement set") for r in reasons) == 4  # .ms, .ms.cal.jy per EB
    assert sum(r.startswith("raw ASDM") for r in reasons) == 2
    assert not (dst / MEMBER / "calibrated").exists()
    assert not any(".ms/" in f["dest"] or f["dest"].endswith((".ms", ".jy")) for f in report["files"])


def test_hard_mode_links_immutable_files_only(package, tp_sample):
    _r, report, dst = package(tp_sample, "--mode", "hard")
    files = _by_dest(report)
    linked = [d for d, f in files.items() if f["action"] == "link"]
    assert {"product/M100_TP_spw17.sd.im.fits", "script/scriptForSDimaging.py",
            "calibration/jyperk.csv", "log/casa-20170613-091000.log"} <= set(linked)
    for dest in linked:
        assert os.stat(dst / MEMBER / dest).st_ino == os.stat(files[dest]["source"]).st_ino, dest
    tgz = dst / MEMBER / f"calibration/{tp_sample.ebs[0]}.calibration.tgz"
    assert files[tgz.relative_to(dst / MEMBER).as_posix()]["action"] == "tgz"
    assert os.stat(tgz).st_nlink == 1


def test_hard_mode_with_ms_copies_calibrated_tables(package, tp_sample):
    _r, report, dst = package(tp_sample, "--mode", "hard", "--ms")
    member = dst / MEMBER
    assert sorted(p.name for p in (member / "calibrated").iterdir()) == [
        f"{eb}.ms.cal.jy" for eb in tp_sample.ebs]
    assert sum("intermediate" in s["reason"] for s in report["skipped"]) == 2  # the raw <EB>.ms
    eb = tp_sample.ebs[0]
    table = member / f"calibrated/{eb}.ms.cal.jy"
    src = tp_sample.root / f"Calibration_X57a5/{eb}.ms.cal.jy"
    def files(top: Path) -> set[Path]:  # lock files describe the reducer's sessions: left out
        return {p.relative_to(top) for p in top.rglob("*") if p.is_file() and p.name != "table.lock"}

    src_files = files(src)
    assert src_files and files(table) == src_files
    for rel in src_files:
        assert (table / rel).read_bytes() == (src / rel).read_bytes(), rel
        assert os.stat(table / rel).st_ino != os.stat(src / rel).st_ino, rel
    assert any("copied, not hard-linked" in w for w in report["warnings"])
    assert os.stat(member / "product/M100_TP_spw17.sd.im.fits").st_ino == os.stat(
        tp_sample.root / "Imaging/M100_TP_spw17.sd.im.fits").st_ino


@pytest.mark.parametrize("mode", ["fake", "copy"])
def test_append_group_and_member(package, tp_sample, mode):
    package(tp_sample, "--mode", mode)
    _r, second, dst = package(tp_sample, "--mode", mode, "--append", "group")
    _r, third, _ = package(tp_sample, "--mode", mode, "--append", "member", "--force")  # same SB
    assert second["member"] == "sg_ouss_id/group_ouss_2_id/member_ouss_id"
    assert third["member"] == "sg_ouss_id/group_ouss_2_id/member_ouss_2_id"
    sg = dst / "sg_ouss_id"
    assert sorted(p.name for p in sg.iterdir()) == ["group_ouss_2_id", "group_ouss_id"]
    for member in (MEMBER, second["member"], third["member"]):
        assert files_below(dst / member) == expected(tp_sample.ebs), member
    if mode == "copy":
        r = subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=dst,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_append_member_without_a_package_fails_clearly(package, tp_sample):
    r, out, dst = package(tp_sample, "--append", "member", expect=1)
    assert "--append member" in r.stderr and out["errors"]
    assert not (dst / "sg_ouss_id").exists()


def test_each_nonstandard_script_is_packaged_with_a_warning(package, tp_copy):
    extra = {"Calibration_X57a5/scriptForSDcalibration_extra.py": "# extra flags\n",
             "Imaging/my_baseline_fit.py": "# baseline fit by hand\n"}
    for rel, text in extra.items():
        (tp_copy.root / rel).write_text(text)
    r, report, dst = package(tp_copy, "--mode", "copy")
    for rel in extra:
        name = Path(rel).name
        assert (dst / MEMBER / "script" / name).read_text() == extra[rel]
        lines = [w for w in report["warnings"] if name in w]
        assert len(lines) == 1 and lines[0].startswith("script/") and "non-standard" in lines[0]
        assert any(name in line for line in r.stderr.splitlines() if "warning" in line)
    assert len(report["warnings"]) == 2


@pytest.mark.parametrize("mode", ["fake", "ticket", "copy", "hard"])
def test_mixed_sd_and_interferometric_scripts_are_refused(package, tp_copy, mode):
    (tp_copy.root / IF_SCRIPT).write_text("# interferometric calibration\n")
    r, out, dst = package(tp_copy, "--mode", mode, expect=1)
    line = next(x for x in r.stderr.splitlines() if "script.mixed_arrays" in x)
    assert line.startswith(f"qa2: error: {IF_SCRIPT}: ") and "ERROR" not in line
    for name in (IF_SCRIPT, *(f"{eb}.ms.scriptForSDCalibration.py" for eb in tp_copy.ebs)):
        assert name in line
    assert any(IF_SCRIPT in e and "scriptForSDCalibration" in e for e in out["errors"])
    assert not dst.exists() and not dst.with_name(dst.name + ".ticket.zip").exists()


def test_dry_run_writes_nothing(package, tp_sample):
    _r, report, dst = package(tp_sample, "--mode", "copy", "--dry-run")
    assert report["dry_run"] and len(report["files"]) == len(expected(tp_sample.ebs))
    assert not dst.exists() and not dst.with_name(dst.name + ".ticket.zip").exists()


def test_qa2_verify_checks_a_tp_package_with_these_rules(package, tp_sample, run_qa2):
    pytest.importorskip("qa2core.checks.verify", reason="qa2 verify is not in this qa2core")
    _r, _report, dst = package(tp_sample, "--mode", "copy")
    r = run_qa2("verify", dst, "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["ok"], out["findings"]
    assert out["plugin"] == "totalpower"
    assert not [f for f in out["findings"] if f["level"] == "WARN"]
