"""One truth on every path (issue 18): verify judges each member by the plugin that made it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from qa2core import GENERIC, Claim, Finding, Level, hookimpl
from qa2core.planning import paths
from qa2core.testing import write_tree

QA2 = Path(sys.executable).with_name("qa2")
EB_TP = "uid___A002_Xc4f3ae_X57a5"
M12 = {
    "Calibration_X2/uid___A002_X1_X2.ms.scriptForCalibration.py": "# calibration\n",
    "Imaging/scriptForImaging.py": "# imaging\n",
    "Imaging/target.image.pbcor.fits": b"SIMPLE  =                    T" + bytes(2850),
    "Imaging/target.pb.fits": bytes(2880),
}
TP = {
    f"Calibration_X57a5/{EB_TP}.ms.scriptForSDCalibration.py": "# sd calibration\n",
    "Imaging/scriptForSDimaging.py": "# sd imaging\n",
}


def qa2(*args, ok=True):
    done = subprocess.run([str(QA2), *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def trees(tmp_path):
    (tmp_path / "out").mkdir()
    return (write_tree(tmp_path / "m12", M12), write_tree(tmp_path / "tp", TP),
            tmp_path / "out" / "2015.1.00123.S")


@pytest.mark.parametrize("append", ["member", "group"])
@pytest.mark.parametrize("order", ["12m first", "TP first"])
def test_a_12m_and_an_appended_tp_member_each_verify_by_their_own_plugin(trees, piscript, append,
                                                                         order):
    m12, tp, dst = trees
    first, second = (m12, tp) if order == "12m first" else (tp, m12)
    qa2("package", first, dst, "--piscript", piscript, "--mode", "copy")
    qa2("package", second, dst, "--piscript", piscript, "--mode", "copy", "--append", append)
    out = json.loads(qa2("verify", dst, "--json").stdout)
    assert out["ok"], out["findings"]
    assert out["plugin"] == "interferometric,totalpower"
    assert not {f["rule"] for f in out["findings"]} & {"script.sd_calibration", "script.calibration"}
    tar = qa2("tar", dst, "--json")
    assert json.loads(tar.stdout)["tars"]


class Probe:
    """A site plugin that claims its own packages and records whether it runs in verify."""

    seen: ClassVar[list[tuple[str, bool]]] = []

    @hookimpl
    def qa2_detect(self, delivery):
        if "site.marker" in delivery.names() or "site.txt" in delivery.names():
            return Claim(GENERIC + 50, "site material", ("site.txt",))
        return None

    @hookimpl
    def qa2_collect(self, delivery):
        from qa2core import Collected

        return [Collected(i, "site") for i in delivery.items if i.name == "site.txt"]

    @hookimpl
    def qa2_layout(self, delivery, collected):
        from qa2core import Placement

        return [Placement("qa/site.txt", sources=(c.item.relpath,), rule="site") for c in collected]

    @hookimpl
    def qa2_validate(self, view):
        Probe.seen.append((view.purpose.value, view.verifying))
        return [Finding(Level.WARN, "site.ran", "qa/site.txt", "site rules ran")]


def test_validate_hooks_are_told_whether_they_run_in_verify(qa2_pm, tmp_path):
    from qa2core import engine
    from qa2core.checks.verify import verify

    qa2_pm.register(Probe(), name="site")
    src = write_tree(tmp_path / "red", {"site.marker": "", "site.txt": "ours\n"})
    dst = tmp_path / "2015.1.00123.S"
    Probe.seen = []
    engine.package(src, dst, plugins=qa2_pm, mode="copy", style="cycle0-nopipe", noms=False)
    report = verify(dst, plugins=qa2_pm)
    assert Probe.seen == [("package", False), ("package", True)]
    assert "site.ran" in {f.rule for f in report.findings}


@pytest.mark.parametrize("what", ["not installed", "does not claim"])
def test_a_member_whose_plugin_is_gone_is_said_and_an_error_for_ingestion(qa2_pm, tmp_path, what):
    from qa2core import engine
    from qa2core.checks.verify import verify

    qa2_pm.register(Probe(), name="site")
    src = write_tree(tmp_path / "red", {"site.marker": "", "site.txt": "ours\n"})
    dst = tmp_path / "2015.1.00123.S"
    engine.package(src, dst, plugins=qa2_pm, mode="copy", style="cycle0-nopipe", noms=False)
    qa2_pm.pm.unregister(name="site")
    if what == "does not claim":
        class Quiet(Probe):
            @hookimpl
            def qa2_detect(self, delivery):
                return None

        qa2_pm.register(Quiet(), name="site")
    for ingestion, level in ((False, "WARN"), (True, "ERROR")):
        report = verify(dst, plugins=qa2_pm, for_ingestion=ingestion)
        said = [f for f in report.findings if f.rule == "structure.plugin"]
        assert said and str(said[0].level) == level and "'site'" in said[0].message
        assert ("not installed" in said[0].message) == (what == "not installed")
    assert paths.journal_file(dst).is_file()


def test_product_suffixes_match_in_any_letter_case(tmp_path, piscript):
    from qa2core.testing import fits_header

    m12 = dict(M12)
    m12.pop("Imaging/target.image.pbcor.fits")
    m12.pop("Imaging/target.pb.fits")
    m12["Imaging/NGC1068_CO32.IMAGE.PBCOR.FITS"] = fits_header("BUNIT   = 'Jy/beam '")
    m12["Imaging/NGC1068_CO32.IMAGE.PB.FITS"] = fits_header()
    src = write_tree(tmp_path / "red", m12)
    dst = tmp_path / "2015.1.00123.S"
    out = json.loads(qa2("package", src, dst, "--piscript", piscript, "--mode", "copy",
                         "--json").stdout)
    dests = {Path(f["dest"]).name for f in out["files"]}
    assert "NGC1068_CO32.IMAGE.PBCOR.FITS" in dests  # the PI's cube, never "not recognised"
    assert "NGC1068_CO32.IMAGE.PB.FITS.gz" in dests  # a primary beam, compressed as any
    assert not [r for r in out.get("left_out", []) if "PBCOR" in json.dumps(r)]
    assert qa2("verify", dst).returncode == 0


def test_a_link_inside_origpath_is_its_target_never_a_second_source(tmp_path, piscript):
    m12 = dict(M12)
    m12["Imaging/scriptForImagingPrep.py"] = "# prep\n"
    src = write_tree(tmp_path / "red", m12)
    (src / "calibrated").mkdir()
    (src / "calibrated/scriptForImagingPrep.py").symlink_to("../Imaging/scriptForImagingPrep.py")
    dst = tmp_path / "2015.1.00123.S"
    done = qa2("package", src, dst, "--piscript", piscript, "--mode", "copy", "--json", ok=False)
    assert done.returncode == 0, done.stderr  # no [plan.clash]
    out = json.loads(done.stdout)
    assert any(s["source"].endswith("/calibrated/scriptForImagingPrep.py") and
               "a link to Imaging/scriptForImagingPrep.py" in s["reason"]
               for s in out["skipped"]), out["skipped"]
    member = dst / "sg_ouss_id/group_ouss_id/member_ouss_id"
    assert (member / "script/scriptForImagingPrep.py").read_text() == "# prep\n"


def test_an_asdm_linked_from_the_shared_raw_area_is_left_out_not_refused(tmp_path, piscript):
    raw = write_tree(tmp_path / "shared-raw" / "uid___A002_X1_X2.asdm.sdm",
                     {"ASDM.xml": "<ASDM/>\n", "Main.xml": "<Main/>\n"})
    src = write_tree(tmp_path / "red", M12)
    (src / "raw").mkdir()
    (src / "raw/uid___A002_X1_X2.asdm.sdm").symlink_to(raw)
    dst = tmp_path / "2015.1.00123.S"
    assert qa2("detect", src).returncode == 0
    assert qa2("inspect", src).returncode == 0
    out = json.loads(qa2("package", src, dst, "--piscript", piscript, "--mode", "copy",
                         "--json").stdout)
    assert any(s["source"].endswith("raw/uid___A002_X1_X2.asdm.sdm") and "raw" in s["reason"].lower()
               for s in out["skipped"]), out["skipped"]
    assert qa2("verify", dst).returncode == 0
    elsewhere = write_tree(tmp_path / "elsewhere", {"notes.py": "# not raw data\n"})
    (src / "Imaging/notes.py").symlink_to(elsewhere / "notes.py")  # any other link out: refused
    done = qa2("package", src, tmp_path / "again", "--piscript", piscript, ok=False)
    assert done.returncode == 1 and "symbolic link leaving ORIGPATH" in done.stderr


def test_the_api_takes_the_clis_ous_uids_and_force(trees, piscript, tmp_path):
    from QA2_Packaging_module import Qa2Error, QA_Packager
    from qa2core.testing import tree_state

    m12, _tp, dst = trees
    uids = "uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X69"
    QA_Packager(m12, packpath=dst, PIscript=piscript, mode="copy", ous_uids=uids, verbose=False)
    cli = tmp_path / "cli" / dst.name
    cli.parent.mkdir()
    qa2("package", m12, cli, "--piscript", piscript, "--mode", "copy", "--ous-uids", uids)
    assert tree_state(dst) == tree_state(cli)
    member = ["uid://A001/X87c/X67,uid://A001/X87c/X68,uid://A001/X87c/X70"]
    with pytest.raises(Qa2Error, match=r"\[append.duplicate\]"):
        QA_Packager(m12, packpath=dst, PIscript=piscript, mode="copy", append="member",
                    ous_uids=member[0], verbose=False)
    QA_Packager(m12, packpath=dst, PIscript=piscript, mode="copy", append="member",
                ous_uids=member[0], force=True, verbose=False)
    assert (dst / "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/"
            "member.uid___A001_X87c_X70").is_dir()


def test_a_casa_image_casatools_cannot_open_refuses_fake_and_copy_alike(tmp_path, piscript):
    import importlib.util

    if importlib.util.find_spec("casatools") is None:  # make test installs it: runs in CI
        pytest.skip("needs casatools (make bootstrap)")
    m12 = {k: v for k, v in M12.items() if not k.endswith(".fits")}
    m12["Imaging/broken.image.pbcor/table.dat"] = b"\x00not a casacore table" * 8
    m12["Imaging/broken.image.pbcor/table.info"] = "Type = Image\nSubType = \n"
    src = write_tree(tmp_path / "red", m12)
    errors = []
    for mode in ("fake", "ticket", "copy"):
        dst = tmp_path / mode / "2015.1.00123.S"
        dst.parent.mkdir()
        done = qa2("package", src, dst, "--piscript", piscript, "--mode", mode, "--json", ok=False)
        assert done.returncode == 1, (mode, done.stderr)
        errors.append(json.loads(done.stdout)["errors"])
        assert not dst.exists()
    assert errors[0] == errors[1] == errors[2]
    line = next(e for e in errors[0] if "[product.export]" in e)
    assert line.startswith(f"{src}/Imaging/broken.image.pbcor: ")
    assert ".qa2" not in line and "qa2-casa-" not in line  # the source, never qa2's scratch copy
