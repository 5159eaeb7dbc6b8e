"""Packaging a real manual reduction (real MS, caltables, CASA images, FITS) in every mode."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qa2core import engine
from qa2core.testing import files_below, tree_state

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
EBS = ("uid___A002_Xb8e115_X1e3b", "uid___A002_Xb8e115_X2a41")
EXPECTED = {
    "README",
    *(f"calibration/{eb}.calibration.tgz" for eb in EBS),
    *(f"script/{eb}.ms.scriptForCalibration.py" for eb in EBS),
    "script/scriptForFluxCalibration.py", "script/scriptForImagingPrep.py",
    "script/scriptForImaging.py", "script/scriptForPI.py",
    "product/calibrated_final_cont.image.pbcor.fits", "product/calibrated_final_cont.flux.fits.gz",
    "product/calibrated_final_cont.mask.tgz", "product/calibrated_final_line.image.pbcor.fits",
    "product/calibrated_final_line.pb.fits.gz",
    "log/Calibration_X1e3b/casa-20160418-101500.log", "log/Calibration_X2a41/casa-20160418-101500.log",
    "log/casa-20160419-091000.log",
}


@pytest.fixture
def package(manual_sample, if_pm, tmp_path):
    before = tree_state(manual_sample.root)
    dst = tmp_path / manual_sample.project

    def run(mode, **kw):
        kw.setdefault("style", "cycle3-nopipe")
        report = engine.package(manual_sample.root, dst, readme_path=manual_sample.readme_header,
                                piscript=manual_sample.piscript, mode=mode, plugins=if_pm, **kw)
        return report, dst / report.member

    yield run
    assert tree_state(manual_sample.root) == before, "the source changed"


def test_real_sample_is_claimed(manual_sample, if_pm):
    assert engine.detect(manual_sample.root, if_pm).plugin == "interferometric"


def test_fake_tree_has_the_real_names_and_empty_files(package, manual_sample):
    _report, member = package("fake")
    names = files_below(member)
    assert {n for n in names if not n.startswith("qa/")} == EXPECTED
    assert sum(n.startswith("qa/") and n.endswith(".png") for n in names) == 6
    for name in names - {"README"}:
        assert (member / name).stat().st_size == 0, name
    readme = (member / "README").read_bytes()
    assert readme.startswith(manual_sample.readme_header.read_bytes())
    assert b"calibrated_final_cont.mask.tgz" in readme and b"flux.fits.gz" in readme


def test_ticket_mode_zip_has_real_scripts_and_qa(package, manual_sample):
    report, member = package("ticket")
    with zipfile.ZipFile(report.ticket) as zf:
        names = set(zf.namelist())
        assert f"script/{EBS[0]}.ms.scriptForCalibration.py" in names
        assert zf.read("script/scriptForPI.py") == manual_sample.piscript.read_bytes()
        assert any(n.startswith("qa/") and n.endswith(".png") for n in names)
        assert "package_size.txt" in names and zf.read("README") == (member / "README").read_bytes()
    assert (member / "script/scriptForImaging.py").stat().st_size == 0


def test_copy_mode_content(package, manual_sample, tmp_path):
    _report, member = package("copy")
    src = manual_sample.root
    # PB image: standard gzip, bit-exact, and astropy reads the same pixels.
    pb_src = src / "Imaging/calibrated_final_line.pb.fits"
    pb_gz = member / "product/calibrated_final_line.pb.fits.gz"
    assert gzip.decompress(pb_gz.read_bytes()) == pb_src.read_bytes()
    from astropy.io import fits

    with fits.open(pb_gz) as packed, fits.open(pb_src) as orig:
        assert np.array_equal(packed[0].data, orig[0].data, equal_nan=True)
    # flux image: the FITS ships compressed, the CASA directory does not ship at all.
    assert not (member / "product/calibrated_final_cont.flux.tgz").exists()
    # mask: a CASA image directory as the only top-level member of the tgz.
    with tarfile.open(member / "product/calibrated_final_cont.mask.tgz") as tar:
        assert {n.split("/")[0] for n in tar.getnames()} == {"calibrated_final_cont.mask"}
        assert not any(n.endswith("table.lock") for n in tar.getnames())
        tar.extractall(tmp_path / "x", filter="data")
    # per-EB calibration tables, each under its own name.
    with tarfile.open(member / f"calibration/{EBS[0]}.calibration.tgz") as tar:
        tops = {n.split("/")[0] for n in tar.getnames()}
    assert f"{EBS[0]}.ms.split.bandpass" in tops and f"{EBS[0]}.ms.split.fluxscale" in tops
    assert f"{EBS[0]}.ms.tsys" in tops and not any(EBS[1] in t for t in tops)
    # The extracted mask is a working CASA image with the source's shape and pixels (read from
    # a plain copy of the source, so the source itself is never opened by casacore).
    from qa2core.testing.casa import tools

    shutil.copytree(src / "Imaging/calibrated_final_cont.mask", tmp_path / "orig.mask")
    ia = tools().image()
    try:
        ia.open(str(tmp_path / "orig.mask"))
        want_shape, want = list(ia.shape()), ia.getchunk()
        ia.close()
        ia.open(str(tmp_path / "x/calibrated_final_cont.mask"))
        got_shape, got = list(ia.shape()), ia.getchunk()
    finally:
        ia.close()
    assert got_shape == want_shape and min(want_shape) > 0
    assert np.array_equal(got, want) and set(np.unique(want)) == {0.0, 1.0}  # a real 0/1 mask
    r = subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"],
                       cwd=member.parents[2], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_hard_mode_links_only_immutable_files(package, manual_sample):
    _, member = package("hard")
    src = manual_sample.root
    pairs = {
        "script/scriptForImaging.py": "Imaging/scriptForImaging.py",
        "product/calibrated_final_cont.image.pbcor.fits": "Imaging/calibrated_final_cont.image.pbcor.fits",
    }
    for dest, source in pairs.items():
        assert os.stat(member / dest).st_ino == os.stat(src / source).st_ino
    tgz = member / f"calibration/{EBS[0]}.calibration.tgz"
    assert os.stat(tgz).st_nlink == 1


def test_cycle0_ships_calibrated_ms_copied_never_linked(package, manual_sample):
    report, member = package("hard", style="cycle0-nopipe")
    calibrated = sorted(p.name for p in (member / "calibrated").iterdir())
    assert calibrated == [f"{eb}.ms.split.cal" for eb in EBS]
    table = member / f"calibrated/{EBS[0]}.ms.split.cal"
    src_table = manual_sample.root / f"Calibration_X1e3b/{EBS[0]}.ms.split.cal"
    assert (table / "table.dat").read_bytes() == (src_table / "table.dat").read_bytes()
    assert os.stat(table / "table.dat").st_ino != os.stat(src_table / "table.dat").st_ino
    assert any("copied, not hard-linked" in w for w in report.warnings)
    from qa2core.testing.casa import tools

    tb = tools().table()
    tb.open(str(table))
    assert tb.nrows() > 0
    tb.close()


def test_noms_styles_ship_no_measurement_set(package):
    report, member = package("copy")
    assert not (member / "calibrated").exists()
    skipped = [source for source, reason in report.skipped if reason.startswith("measurement set")]
    assert len(skipped) == 6  # .ms, .ms.split, .ms.split.cal for two EBs
    assert not any(Path(f.dest).name.endswith(".ms") for f in report.files)


def test_append_group_and_member_with_real_data(package):
    package("copy")
    _, second = package("copy", append="group")
    _, third = package("copy", append="member", force=True)  # the same SB again: on purpose
    assert second.name == "member_ouss_id" and second.parent.name == "group_ouss_2_id"
    assert third.name == "member_ouss_2_id" and third.parent.name == "group_ouss_2_id"
    root = second.parents[1]
    assert sorted(p.name for p in root.iterdir()) == ["group_ouss_2_id", "group_ouss_id"]
    r = subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=root.parent,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_missing_calibration_script_is_refused(if_pm, make_tree, tmp_path):
    root = make_tree({"Imaging/scriptForImaging.py": "#", "Imaging/x.image.pbcor.fits": "F"})
    with pytest.raises(Exception, match="1 rule"):
        engine.package(root, tmp_path / "2015.1.00123.S", mode="fake", plugins=if_pm)
    assert not (tmp_path / "2015.1.00123.S").exists()
