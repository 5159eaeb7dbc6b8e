"""Detection, classification and validation on small trees (no CASA needed): the hooks are
called directly or through the plugin manager; the last test goes through the engine."""

from __future__ import annotations

import pytest
from qa2_totalpower import plugin

from qa2core import GENERIC, OVERRIDE, SPECIFIC, Action, Collection, Level, PackageView, Purpose
from qa2core.engine import detect, load_delivery
from qa2core.errors import NotDetected, ValidationFailed
from qa2core.planning.styles import resolve_style

EB = "uid___A002_Xc4f3ae_X57a5"
EB2 = "uid___A002_Xc4f3ae_X5c31"
IF_EB = "uid___A002_Xb8e115_X1e3b"
CALTABLE = {"table.dat": b"\x00" * 16, "table.info": "Type = Calibration\nSubType = T Jones\n"}
IMAGE = {"table.dat": b"\x00" * 16, "table.info": "Type = Image\nSubType = \n"}


def _table(prefix: str, files: dict) -> dict:
    return {f"{prefix}/{name}": content for name, content in files.items()}


@pytest.mark.parametrize("script", [
    f"{EB}.ms.scriptForSDCalibration.py", "scriptForSDimaging.py",
    f"{EB}.ms.scriptForSDampcalReduction.py", f"{EB}.ms.scriptForSDefficiencies.py",
])
def test_each_sd_generator_output_claims_with_override(tp_pm, make_tree, script):
    root = make_tree({f"work/{script}": "#", "notes.txt": ""})
    decision = detect(root, tp_pm)
    assert decision.plugin == "totalpower" and decision.claim.score == OVERRIDE
    assert decision.claim.evidence == (f"work/{script}",)
    assert decision.context.sd_scripts == (f"work/{script}",)


def test_no_sd_script_no_claim(tp_pm, make_tree):
    root = make_tree({f"{EB}.ms.scriptForCalibration.py": "#", "x.sd.im.fits": "F"})
    with pytest.raises(NotDetected):
        detect(root, tp_pm)


@pytest.mark.parametrize("marker", [
    "script/PPR_uid___A001_X87c_X6a.xml", "uid___A001_X87c_X69.hsd_calimage.pprequest.xml",
    "uid___A001_X87c_X69.hsd_calimage.casa_pipescript.py",
    "uid___A001_X87c_X69.hsd_calimage.casa_piperestorescript.py",
    "uid___A001_X87c_X69.hsd_calimage.weblog.tgz",
])
def test_declines_pipeline_markers(tp_pm, make_tree, marker):
    root = make_tree({f"{EB}.ms.scriptForSDCalibration.py": "#", "jyperk.csv": "MS,Antenna\n",
                      marker: "<x/>"})
    assert tp_pm.claims(load_delivery(root)) == ()


def test_declines_a_staged_placeholder_chain_except_to_verify_it(tp_pm, make_tree):
    member = "sg_ouss_id/group_ouss_id/member_ouss_id"
    root = make_tree({f"{member}/script/{EB}.ms.scriptForSDCalibration.py": "#",
                      f"{member}/calibration/jyperk.csv": "MS\n", f"{member}/README": ""})
    assert tp_pm.claims(load_delivery(root)) == ()
    verifying = load_delivery(root, purpose=Purpose.VERIFY)
    assert [r.plugin for r in tp_pm.claims(verifying)] == ["totalpower"]
    (root / member / "script/PPR_uid___A001_X87c_X6a.xml").write_text("<x/>")
    pipeline = load_delivery(root, purpose=Purpose.VERIFY)
    assert tp_pm.claims(pipeline) == ()
    # the chain is recognised wherever it sits, not inside a longer directory name
    nested = make_tree({f"x/{member}/{EB}.ms.scriptForSDCalibration.py": "#"}, name="nested")
    assert tp_pm.claims(load_delivery(nested)) == ()
    lookalike = make_tree({f"my_{member}/{EB}.ms.scriptForSDCalibration.py": "#"}, name="lookalike")
    assert [r.plugin for r in tp_pm.claims(load_delivery(lookalike))] == ["totalpower"]


def test_sd_scripts_win_over_interferometric_claims(qa2_pm, make_tree):
    pytest.importorskip("qa2_interferometric")
    from qa2_interferometric import plugin as ifp
    from qa2_totalpower import plugin

    qa2_pm.register(plugin, name="totalpower")
    qa2_pm.register(ifp, name="interferometric")
    mixed = make_tree({f"a/{EB}.ms.scriptForSDCalibration.py": "#",
                       f"b/{IF_EB}.ms.scriptForCalibration.py": "#"}, name="mixed")
    with pytest.raises(ValidationFailed) as refused:  # detect refuses what package refuses
        detect(mixed, qa2_pm)
    assert refused.value.plugin == "totalpower"
    assert [line.rsplit(" [", 1)[-1] for line in refused.value.lines] == ["script.mixed_arrays]"]
    assert refused.value.lines[0].startswith(f"b/{IF_EB}.ms.scriptForCalibration.py: ")
    decision = qa2_pm.choose(load_delivery(mixed))
    assert decision.plugin == "totalpower"
    assert [(r.plugin, r.claim.score) for r in decision.ranked] == [("totalpower", OVERRIDE),
                                                                    ("interferometric", SPECIFIC)]
    tp_with_imaging = make_tree({f"{EB}.ms.scriptForSDCalibration.py": "#",
                                 "scriptForImaging.py": "#"}, name="tp")
    decision = detect(tp_with_imaging, qa2_pm)
    assert decision.plugin == "totalpower" and decision.ranked[1].claim.score == GENERIC


def test_layout_maps_names_to_member_dirs(tp_pm, make_tree):
    root = make_tree({
        f"c1/{EB}.ms.scriptForSDCalibration.py": "#", f"c2/{EB2}.ms.scriptForSDCalibration.py": "#",
        f"c1/{EB}.ms.scriptForSDampcalReduction.py": "#", "img/scriptForSDimaging.py": "#",
        "img/M100.sd.im.fits": "F", "img/M100.image.fits": "F", "img/M100.mask.fits": "F",
        "c1/casa-1.log": "l", "c2/casa-1.log": "l", "jyperk.csv": "MS\n", "c1/sdcal.last": "",
        "qa2/tsys.png": b"\x89PNG", "scriptForPI.py": "#", "my_baseline_fit.py": "#",
        **_table(f"c1/{EB}.ms.tsys", CALTABLE), **_table(f"c1/{EB}.ms.sky", CALTABLE),
        **_table(f"c2/{EB2}.ms.tsys", CALTABLE), **_table("img/M100.image", IMAGE),
        **_table("img/M100.weight", IMAGE),
    })
    delivery = load_delivery(root, "cycle3-nopipe")
    context = detect(root, tp_pm).context
    collection = tp_pm.collect("totalpower", delivery, context)
    assert collection.findings == ()
    collected = collection.items
    placements = {p.dest: p for p in tp_pm.layout("totalpower", delivery,
                                                   [c for c in collected if not c.skip], context)}
    assert placements[f"calibration/{EB}.calibration.tgz"].sources == (
        f"c1/{EB}.ms.sky", f"c1/{EB}.ms.tsys")
    assert placements[f"calibration/{EB2}.calibration.tgz"].action is Action.TGZ
    assert placements["calibration/jyperk.csv"].action is Action.COPY
    assert placements["product/M100.mask.fits.gz"].action is Action.GZIP
    assert {"product/M100.sd.im.fits", "product/M100.image.fits", "script/scriptForSDimaging.py",
            f"script/{EB}.ms.scriptForSDampcalReduction.py", "script/my_baseline_fit.py",
            "log/c1/casa-1.log", "log/c2/casa-1.log", "qa/tsys.png"} <= set(placements)
    assert not any(d.startswith("script/scriptForImaging") for d in placements)
    skipped = {c.item.name: c.skip for c in collected if c.skip}
    assert "FITS export is packaged" in skipped["M100.image"]
    assert "exportfits" in skipped["M100.weight"]
    assert "parameter" in skipped["sdcal.last"] and "--piscript" in skipped["scriptForPI.py"]


def test_calibrated_ms_only_without_noms_and_jy_first(tp_pm, make_tree):
    ms = {"table.dat": b"\x00", "table.info": "Type = Measurement Set\nSubType = \n"}
    root = make_tree({f"{EB}.ms.scriptForSDCalibration.py": "#", **_table(f"{EB}.ms", ms),
                      **_table(f"{EB}.ms.cal", ms), **_table(f"{EB}.ms.cal.jy", ms),
                      **_table(f"{EB2}.ms.cal", ms)})
    noms = plugin.qa2_collect(delivery=load_delivery(root, "cycle3-nopipe"), context=None).items
    assert all(c.skip.startswith("measurement set") for c in noms if c.item.is_dir)
    cycle0 = plugin.qa2_collect(delivery=load_delivery(root, "cycle0-nopipe"), context=None).items
    kept = {c.item.name: c.skip for c in cycle0 if c.kind == "calibrated_ms"}
    assert kept == {f"{EB}.ms.cal": f"superseded by {EB}.ms.cal.jy (Jy/K applied)",
                    f"{EB}.ms.cal.jy": "", f"{EB2}.ms.cal": ""}


def _validate(tp_pm, files, style="cycle3-nopipe"):
    view = PackageView(tuple(files), resolve_style(style), "totalpower")
    return tp_pm.validate(view, "totalpower", None)


def _rules(findings, level):
    return sorted(f.rule for f in findings if f.level is level)


def test_validate_a_complete_package_is_clean(tp_pm):
    files = ["README", "script/scriptForPI.py", "script/scriptForSDimaging.py",
             f"script/{EB}.ms.scriptForSDCalibration.py", f"calibration/{EB}.calibration.tgz",
             "calibration/jyperk.csv", "log/casa-1.log", "product/M100.sd.im.fits", "qa/"]
    assert [f for f in _validate(tp_pm, files) if f.level is not Level.INFO] == []


def test_validate_tp_rules(tp_pm):
    files = ["README", "script/scriptForPI.py", "script/M100.ms.scriptForSDCalibration.py",
             f"script/{EB}.ms.scriptForSDcalibration.py", f"calibration/{EB2}.calibration.tgz",
             "calibration/jyperk.csv", "calibration/x.jyperk.csv", "log/casa-1.log",
             f"product/{EB2}.ms.cal.jy.image.fits", "product/uid___A001_X87c_X69.M100.sd.im.fits", "qa/"]
    findings = _validate(tp_pm, files)
    assert _rules(findings, Level.ERROR) == ["calibration.jyperk", "script.sd_calibration",
                                             "script.sd_calibration_per_eb"]
    assert _rules(findings, Level.WARN) == ["script.nonstandard", "script.sd_calibration_name",
                                            "script.sd_calibration_per_eb", "script.sd_imaging"]
    lines = [f.line() for f in findings]
    assert all("\n" not in line for line in lines)
    # an OUS uid in a product name is not taken for an EB
    assert not any("uid___A001_X87c_X69" in line for line in lines)


def test_validate_checks_the_member_directory_whoever_asks():
    """No ``plugin`` guard: the core decides whose rules run, the rules just check the view."""
    view = PackageView(("README", "script/my.py"), resolve_style(""), "interferometric")
    findings = plugin.qa2_validate(view=view)
    assert "script.sd_calibration" in {f.rule for f in findings if f.level is Level.ERROR}
    assert "script.nonstandard" in {f.rule for f in findings}


def test_registered_under_another_name_its_rules_still_run(qa2_pm):
    qa2_pm.register(plugin, name="site-tp")
    view = PackageView(("README", "script/scriptForPI.py", "calibration/a.jyperk.csv",
                        "calibration/b.jyperk.csv"), resolve_style(""), "site-tp")
    errors = {f.rule for f in qa2_pm.validate(view, "site-tp", None) if f.level is Level.ERROR}
    assert {"script.sd_calibration", "calibration.jyperk"} <= errors


def _orphan_tree(make_tree):
    orphan = "uid___A002_Xc4f3ae_X9999"
    root = make_tree({
        f"{EB}.ms.scriptForSDCalibration.py": "# SD calibration\n",
        "scriptForSDimaging.py": "# imaging\n",
        f"{orphan}.asdm.sdm/ASDM.xml": "<ASDM/>",
        f"{EB}.asdm.sdm/ASDM.xml": "<ASDM/>",
        # misnamed: scriptForPI does not run it, so its EB counts as unscripted
        f"{EB2}.asdm.sdm/ASDM.xml": "<ASDM/>", f"{EB2}.scriptForSDCalibration.py": "#",
        "M100.sd.im.fits": "F",
    })
    return root, orphan


def test_an_eb_without_its_sd_script_is_a_finding_of_collect(tp_pm, make_tree):
    """A problem of the input: reported by collect, from the scripts detect found."""
    root, orphan = _orphan_tree(make_tree)
    delivery = load_delivery(root)
    claim = plugin.qa2_detect(delivery=delivery)
    assert claim.context.scripted_ebs == {EB}
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    assert isinstance(collection, Collection)
    assert [(f.level, f.rule, f.path) for f in collection.findings] == [
        (Level.WARN, "script.sd_calibration_per_eb", f"{EB2}.asdm.sdm"),
        (Level.WARN, "script.sd_calibration_per_eb", f"{orphan}.asdm.sdm")]
    assert collection.findings[1].message == (
        f"EB {orphan} is in the reduction but has no {orphan}.ms.scriptForSDCalibration.py: "
        "scriptForPI will treat it as unused (QA semipass)")
    decision = tp_pm.choose(delivery)
    assert tp_pm.collect(decision.plugin, delivery, decision.context).findings == collection.findings


def test_an_eb_of_the_input_without_its_sd_script_is_warned(tp_pm, make_tree, tmp_path):
    """End to end through the engine: collect's findings reach the report's warnings."""
    from qa2core import engine

    root, orphan = _orphan_tree(make_tree)
    report = engine.package(root, tmp_path / "2016.1.00234.S", mode="fake", plugins=tp_pm)
    orphans = [w for w in report.warnings if "sd_calibration_per_eb" in w]
    assert len(orphans) == 2 and any(orphan in w and "semipass" in w for w in orphans)
