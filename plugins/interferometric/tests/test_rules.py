"""Detection and classification on small trees (no CASA needed)."""

from __future__ import annotations

from qa2core import SPECIFIC, Action
from qa2core.engine import detect, load_delivery


def test_claims_per_eb_calibration_scripts_specifically(if_pm, make_tree):
    root = make_tree({"X1/uid___A002_X1_X2.ms.scriptForCalibration.py": "#", "notes.txt": ""})
    chosen, ranked = detect(root, if_pm)
    assert chosen == "interferometric" and ranked[0].claim.score == SPECIFIC


def test_declines_pipeline_products(if_pm, make_tree):
    root = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
                      "script/PPR_uid___A001_X1_X3.xml": "<x/>"})
    delivery = load_delivery(root)
    assert if_pm.claims(delivery) == ()


def test_layout_maps_names_to_member_dirs(if_pm, make_tree):
    root = make_tree({
        "a/uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
        "scriptForFluxCalibration.py": "#", "img/scriptForImaging.py": "#",
        "img/scriptForImagingPrep.py": "#", "img/x.image.pbcor.fits": "F", "img/x.flux.fits": "F",
        "img/x.mask.fits": "F", "img/y.pb.tt0.fits": "F", "a/casa-1.log": "l",
        "a/Titan.eph": "e", "a/uid___A002_X1_X2.ms.split.fluxscale": "f", "a/task.last": "",
        "a/uid___A002_X1_X2.ms.split.cal.qa2/plot.png": b"\x89PNG",
    })
    delivery = load_delivery(root, "cycle3-nopipe")
    collected = if_pm.collect("interferometric", delivery)
    placements = {p.dest: p for p in if_pm.layout("interferometric", delivery,
                                                   [c for c in collected if not c.skip])}
    assert placements["product/x.flux.fits.gz"].action is Action.GZIP
    assert placements["product/x.mask.fits.gz"].action is Action.GZIP
    assert placements["product/y.pb.tt0.fits"].action is Action.COPY
    assert placements["product/x.image.pbcor.fits"].action is Action.COPY
    assert placements["calibration/Titan.eph"].sources == ("a/Titan.eph",)
    assert placements["calibration/uid___A002_X1_X2.calibration.tgz"].action is Action.TGZ
    assert "qa/uid___A002_X1_X2.ms.split.cal.qa2/plot.png" in placements
    assert {"script/scriptForImagingPrep.py", "script/scriptForFluxCalibration.py",
            "log/casa-1.log"} <= set(placements)
    skipped = {c.item.name: c.skip for c in collected if c.skip}
    assert "parameter" in skipped["task.last"]


def test_imagingprep_is_not_recognised_before_cycle3(if_pm, make_tree):
    root = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
                      "scriptForImagingPrep.py": "#"})
    collected = if_pm.collect("interferometric", load_delivery(root, "cycle2-nopipe"))
    prep = next(c for c in collected if c.item.name == "scriptForImagingPrep.py")
    assert "cycle3" in prep.skip


def test_an_eb_of_the_input_without_its_calibration_script_is_warned(if_pm, make_tree, tmp_path):
    from qa2core import engine

    eb, orphan = "uid___A002_X1_X2", "uid___A002_X1_X9"
    root = make_tree({
        f"{eb}.ms.scriptForCalibration.py": "#", "scriptForImaging.py": "#",
        f"{eb}.asdm.sdm/ASDM.xml": "<ASDM/>", f"{orphan}.asdm.sdm/ASDM.xml": "<ASDM/>",
    })
    report = engine.package(root, tmp_path / "2015.1.00123.S", mode="fake", plugins=if_pm)
    orphans = [w for w in report.warnings if "calibration_per_eb" in w]
    assert len(orphans) == 1 and orphan in orphans[0] and "semipass" in orphans[0]
