"""Detection, classification and validation on small trees (no CASA needed): the hooks are
called directly or through the plugin manager, never through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from qa2_interferometric import plugin
from qa2_interferometric import rules as ifrules

from qa2core import SPECIFIC, Action, Collection, Delivery, ItemType, Level, PackageView, SourceItem
from qa2core.engine import detect, load_delivery
from qa2core.planning.styles import resolve_style

EB, EB2 = "uid___A002_X1_X2", "uid___A002_X1_X3"


def test_claims_per_eb_calibration_scripts_specifically(if_pm, make_tree):
    root = make_tree({"X1/uid___A002_X1_X2.ms.scriptForCalibration.py": "#", "notes.txt": ""})
    decision = detect(root, if_pm)
    assert decision.plugin == "interferometric" and decision.claim.score == SPECIFIC
    # detect hands its findings on: collect does not look for the scripts again
    assert decision.context.calibration_scripts == ("X1/uid___A002_X1_X2.ms.scriptForCalibration.py",)
    assert decision.context.scripted_ebs == {EB}


def test_declines_pipeline_products(if_pm, make_tree):
    root = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
                      "script/PPR_uid___A001_X1_X3.xml": "<x/>"})
    delivery = load_delivery(root)
    assert if_pm.claims(delivery) == ()


def test_detect_reads_names_only():
    """A Delivery whose root does not exist: detect, collect and layout never touch the disk."""
    items = (SourceItem(f"c/{EB}.ms.scriptForCalibration.py", ItemType.FILE, 10),
             SourceItem("img/scriptForImaging.py", ItemType.FILE, 10),
             SourceItem(f"c/{EB}.ms.split.cal.qa2/plot.png", ItemType.FILE, 10))
    delivery = Delivery(Path("/nonexistent/qa2"), items, resolve_style("cycle3-nopipe"))
    claim = plugin.qa2_detect(delivery=delivery)
    assert claim.score == SPECIFIC and claim.evidence == (f"c/{EB}.ms.scriptForCalibration.py",)
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    placements = plugin.qa2_layout(delivery=delivery, collected=collection.items)
    assert {p.dest for p in placements} == {
        f"script/{EB}.ms.scriptForCalibration.py", "script/scriptForImaging.py",
        f"qa/{EB}.ms.split.cal.qa2/plot.png"}


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
    context = detect(root, if_pm).context
    collection = if_pm.collect("interferometric", delivery, context)
    assert collection.findings == ()
    collected = collection.items
    placements = {p.dest: p for p in if_pm.layout("interferometric", delivery,
                                                   [c for c in collected if not c.skip], context)}
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


def test_imagingprep_is_not_recognised_before_cycle3(make_tree):
    root = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#",
                      "scriptForImagingPrep.py": "#"})
    collection = plugin.qa2_collect(delivery=load_delivery(root, "cycle2-nopipe"), context=None)
    prep = next(c for c in collection.items if c.item.name == "scriptForImagingPrep.py")
    assert "cycle3" in prep.skip


def _orphan_tree(make_tree):
    orphan = "uid___A002_X1_X9"
    root = make_tree({
        f"{EB}.ms.scriptForCalibration.py": "#", "scriptForImaging.py": "#",
        f"{EB}.asdm.sdm/ASDM.xml": "<ASDM/>", f"{orphan}.asdm.sdm/ASDM.xml": "<ASDM/>",
    })
    return root, orphan


def test_an_eb_without_its_calibration_script_is_a_finding_of_collect(if_pm, make_tree):
    """A problem of the input: reported by collect, from the scripts detect found."""
    root, orphan = _orphan_tree(make_tree)
    delivery = load_delivery(root)
    claim = plugin.qa2_detect(delivery=delivery)
    collection = plugin.qa2_collect(delivery=delivery, context=claim.context)
    assert isinstance(collection, Collection)
    (finding,) = collection.findings
    assert (finding.level, finding.rule, finding.path) == (
        Level.WARN, "script.calibration_per_eb", f"{orphan}.asdm.sdm")
    assert finding.message == (f"EB {orphan} is in the reduction but has no "
                               f"{orphan}.ms.scriptForCalibration.py: scriptForPI will treat it "
                               "as unused (QA semipass)")
    # the same through the manager, with the context the ranking handed on
    decision = if_pm.choose(delivery)
    assert if_pm.collect(decision.plugin, delivery, decision.context).findings == (finding,)
    # the context is what counts: without the script's EB in it, both EBs are reported
    from qa2_interferometric.plugin import Context

    bare = plugin.qa2_collect(delivery=delivery, context=Context())
    assert sorted(f.path for f in bare.findings) == [f"{EB}.asdm.sdm", f"{orphan}.asdm.sdm"]


def test_an_eb_of_the_input_without_its_calibration_script_is_warned(if_pm, make_tree, tmp_path):
    """End to end through the engine: collect's finding reaches the report's warnings."""
    from qa2core import engine

    root, orphan = _orphan_tree(make_tree)
    report = engine.package(root, tmp_path / "2015.1.00123.S", mode="fake", plugins=if_pm)
    orphans = [w for w in report.warnings if "calibration_per_eb" in w]
    assert len(orphans) == 1 and orphan in orphans[0] and "semipass" in orphans[0]


# ---------------------------------------------------------------------------- validation


BROKEN = ("README", "script/scriptForPI.py", "script/calib.ms.scriptForCalibration.py",
          "script/scriptForImaging.py", "calibration/", "log/", "product/x.pbcor.fits", "qa/")


def _view(files, plugin_name="interferometric", style="cycle3-nopipe"):
    return PackageView(tuple(files), resolve_style(style), plugin_name)


def _errors(findings):
    return sorted(f.rule for f in findings if f.level is Level.ERROR)


def test_validate_checks_the_member_directory_whoever_asks():
    """No ``plugin`` guard: the core decides whose rules run, the rules just check the view."""
    findings = plugin.qa2_validate(view=_view(BROKEN, plugin_name="someone-else"))
    assert _errors(findings) == ["script.uid_names"]
    empty = plugin.qa2_validate(view=_view(("README", "script/scriptForPI.py")))
    assert _errors(empty) == ["script.calibration"]


def test_registered_under_another_name_its_rules_still_run(qa2_pm):
    """The same module as a site's plugin: ``manager.validate`` runs it as the packaging plugin."""
    qa2_pm.register(plugin, name="site-ifm")
    findings = qa2_pm.validate(_view(BROKEN, plugin_name="site-ifm"), "site-ifm", None)
    assert _errors(findings) == ["script.uid_names"]
    assert "product.pb_partner" in {f.rule for f in findings}
    # not the packaging plugin (and not cross-cutting): its rules are not asked
    other = qa2_pm.validate(_view(BROKEN, plugin_name="pipeline"), None, None)
    assert "script.uid_names" not in {f.rule for f in other}


def test_validate_manual_rules():
    files = ["README", "script/scriptForPI.py", f"script/{EB}.ms.scriptForCalibration.py",
             f"script/{EB2}.ms.scriptForCalibration.py", f"calibration/{EB}.calibration.tgz",
             "product/x.image.pbcor.fits", "product/x.pb.fits.gz"]
    findings = plugin.qa2_validate(view=_view(files))
    assert _errors(findings) == []
    assert sorted(f.rule for f in findings if f.level is Level.WARN) == [
        "calibration.per_eb", "script.flux", "script.imaging", "script.imagingprep"]
    per_eb = next(f for f in findings if f.rule == "calibration.per_eb")
    assert per_eb.path == f"calibration/{EB2}"


# ---------------------------------------------------------------------------- rule tables


@pytest.mark.parametrize("style", ["cycle0-nopipe", "cycle2-nopipe", "cycle3-nopipe"])
def test_compiled_rule_table_agrees_with_each_rule(style):
    """``classify`` matches one regex per item; it must pick the rule ``NameRule.matches`` picks."""
    from qa2core import UNCLASSIFIED
    from qa2core.planning.rules import classify

    resolved = resolve_style(style)
    names = {p.replace("*", f"{EB}.x") for r in ifrules.RULES for p in r.patterns}
    names |= {"plot.png", "a.fits", "casa.log", "scriptForPI.py", "x.image", "README.header.txt"}
    names |= {n.upper() for n in names} | {n.swapcase() for n in names}  # nocase rules too
    for name in sorted(names):
        for type_, table_type in [(ItemType.FILE, ""), (ItemType.ASDM, ""),
                                  (ItemType.FLAGVERSIONS, ""), (ItemType.TABLE, "Image"),
                                  (ItemType.TABLE, "Measurement Set"),
                                  (ItemType.TABLE, "Calibration"), (ItemType.TABLE, "")]:
            item = SourceItem(f"d/{name}", type_, 1, table_type)
            first = next((r for r in ifrules.RULES if r.matches(item, resolved)), None)
            got = classify(item, ifrules.RULES, resolved)
            assert (got.kind, got.skip) == ((first.kind, first.skip) if first else (UNCLASSIFIED, "")), \
                (name, type_, table_type)
