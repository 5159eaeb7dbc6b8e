"""Where the files of hand-made manual reductions go (docs/layout-rules.md "Manual reductions"), on
small trees (no CASA needed): QA2 material in any layout and letter case, calibration plot
folders, listobs/weather/allFluxes, clashes, and the refusal of pipeline styles."""

from __future__ import annotations

import pytest
from qa2_interferometric import plugin

from qa2core import Level, engine
from qa2core.engine import load_delivery
from qa2core.errors import Qa2Error, ValidationFailed
from qa2core.planning.styles import STYLES

EB, EB2 = "uid___A002_X1_X2", "uid___A002_X1_X3"
CAL = f"{EB}.ms.scriptForCalibration.py"
PIPELINE_STYLES = [s.name for s in STYLES.values() if s.pipeline]
MANUAL_STYLES = [s.name for s in STYLES.values() if not s.pipeline]


def _placed(root, style: str = "cycle3-nopipe") -> dict[str, str]:
    """destination -> source, as the plugin lays ``root`` out; unclassified items under ``"?"``."""
    delivery = load_delivery(root, style)
    collection = plugin.qa2_collect(delivery=delivery, context=None)
    kept = [c for c in collection.items if not c.skip and c.kind != "unclassified"]
    placed = {p.dest: ",".join(p.sources) for p in plugin.qa2_layout(delivery=delivery, collected=kept)}
    placed["?"] = sorted(c.item.relpath for c in collection.items if c.kind == "unclassified")
    return placed


@pytest.mark.parametrize(("source", "dest"), [
    (f"Calibration_X2/{EB}.qa2_ampVsTime.png", f"qa/{EB}.qa2_ampVsTime.png"),
    (f"Calibration_X2/{EB}.qa2_bandpass.png", f"qa/{EB}.qa2_bandpass.png"),
    (f"Calibration_X2/{EB}.qa2_report.txt", f"qa/{EB}.qa2_report.txt"),
    ("QA2_Report_NGC5921_a_06_TM1.pdf", "qa/QA2_Report_NGC5921_a_06_TM1.pdf"),
    ("Imaging/member_ouss_id.QA2_REPORT.HTML", "qa/member_ouss_id.QA2_REPORT.HTML"),
    (f"Calibration_X2/{EB}.qa0_report.pdf", f"qa/{EB}.qa0_report.pdf"),
    ("Calibration_X2/x.Qa2.pdf", "qa/x.Qa2.pdf"),
    (f"Calibration_X2/{EB}.ms.weather.png", f"qa/{EB}.ms.weather.png"),
    ("weather.png", "qa/weather.png"),
    ("Calibration_X2/Weather_plot.PNG", "qa/Weather_plot.PNG"),
    (f"Calibration_X2/{EB}.ms.listobs", f"qa/{EB}.ms.listobs"),
    (f"Calibration_X2/{EB}.ms.listobs.txt", f"qa/{EB}.ms.listobs.txt"),
    ("allFluxes.txt", "calibration/allFluxes.txt"),
    # folders decide whatever the names: QA containers are dropped, named QA folders kept
    ("QA2/notes.txt", "qa/notes.txt"),
    ("Calibration_X2/qa2/plot.png", "qa/plot.png"),
    ("Calibration_X2/Qa/plot.png", "qa/plot.png"),
    ("QA2/Calibration_X2/plot.png", "qa/Calibration_X2/plot.png"),
    (f"Calibration_X2/{EB}.qa2/plot.png", f"qa/{EB}.qa2/plot.png"),
    (f"QA2/{EB}.ms.split.cal.QA2/sub/plot.png", f"qa/{EB}.ms.split.cal.QA2/sub/plot.png"),
    ("Imaging/NGC5921_qa2_plots/plot.png", "qa/NGC5921_qa2_plots/plot.png"),
    # calibration plot folders, wherever they sit, keep their files
    (f"Calibration_X2/{EB}.ms.tsys.plots/tsys_spw17.png",
     f"calibration/{EB}.calibration.plots/{EB}.ms.tsys.plots/tsys_spw17.png"),
    (f"QA2/{EB}.ms.split.bandpass.plots/a/bp.png",
     f"calibration/{EB}.calibration.plots/{EB}.ms.split.bandpass.plots/a/bp.png"),
    (f"Calibration_X2/{EB}.calibration.plots/tsys.png", f"calibration/{EB}.calibration.plots/tsys.png"),
    ("Calibration_X2/Tsys.PLOTS/tsys.png", "calibration/Tsys.PLOTS/tsys.png"),
])
def test_qa2_material_and_calibration_plots_in_any_layout_and_case(make_tree, source, dest):
    placed = _placed(make_tree({f"Calibration_X2/{CAL}": "#", source: b"\x89PNG"}))
    assert placed[dest] == source and placed["?"] == []


def test_task_parameter_files_are_left_out_with_their_reason(make_tree):
    root = make_tree({CAL: "#", "Calibration_X2/applycal.last": "", "Imaging/tclean.last": ""})
    collection = plugin.qa2_collect(delivery=load_delivery(root), context=None)
    assert {c.item.relpath: c.skip for c in collection.items if c.skip} == {
        "Calibration_X2/applycal.last": "CASA task parameter file",
        "Imaging/tclean.last": "CASA task parameter file"}


def test_jao_and_nrao_layouts_of_one_reduction_give_one_layout(make_tree):
    """JAO: QA2 material beside each EB's calibration (Calibration_X2/, Calibration_X3/); NRAO:
    the same files in one QA2/ folder (per-EB files of one name in per-EB subfolders)."""
    per_eb = ("qa2_ampVsTime.png", "qa2_report.txt", "ms.weather.png", "ms.tsys.plots/t.png")
    generic = ("a.png", "t.txt")
    jao, nrao = {"QA2_Report_SB.pdf": "%PDF", "weather.png": ""}, {}
    for eb in (EB, EB2):
        cal = f"Calibration_X{eb[-1]}"
        jao[f"{cal}/{eb}.ms.scriptForCalibration.py"] = nrao[f"{cal}/{eb}.ms.scriptForCalibration.py"] = "#"
        jao.update({f"{cal}/{eb}.{name}": "" for name in per_eb})
        jao.update({f"{cal}/qa2/{name}": "" for name in generic})
        nrao.update({f"QA2/{eb}.{name}": "" for name in per_eb})
        nrao.update({f"QA2/{cal}/{name}": "" for name in generic})
    nrao.update({f"QA2/{name}": "" for name in ("QA2_Report_SB.pdf", "weather.png")})
    placed, other = _placed(make_tree(jao, "jao")), _placed(make_tree(nrao, "nrao"))
    assert set(placed) == set(other) and placed["?"] == other["?"] == []
    assert {d for d in placed if d.startswith("qa/")} == {
        *(f"qa/{eb}.{name}" for eb in (EB, EB2) for name in per_eb[:3]), "qa/QA2_Report_SB.pdf",
        "qa/weather.png", *(f"qa/Calibration_X{n}/{f}" for n in (2, 3) for f in generic)}


def test_per_eb_files_of_one_name_go_below_their_source_directory(make_tree):
    """One rule for everything bound for qa/ and log/ (and calibration plots): files that would
    land on one destination each go below it under their source directory; a file of ORIGPATH
    itself keeps its place. Four clashing names in two per-EB qa2/ folders: eight files."""
    names = ("ampVsTime.png", "bandpass.png", "phase.png", "textfile.txt")
    root = make_tree({f"Calibration_X2/{CAL}": "#", "Calibration_X2/casa-1.log": "l",
                      "Calibration_X3/casa-1.log": "l", "casa-1.log": "l", "weather.png": "",
                      "Calibration_X2/weather.png": "", "deep/er/weather.png": "",
                      **{f"Calibration_X{n}/qa2/{name}": "" for n in (2, 3) for name in names}})
    placed = _placed(root)
    assert {f"qa/Calibration_X{n}/{name}" for n in (2, 3) for name in names} <= set(placed)
    assert placed["qa/Calibration_X3/textfile.txt"] == "Calibration_X3/qa2/textfile.txt"
    assert {"log/casa-1.log", "log/Calibration_X2/casa-1.log", "log/Calibration_X3/casa-1.log",
            "qa/weather.png", "qa/Calibration_X2/weather.png", "qa/deep/er/weather.png"} <= set(placed)
    assert not any(d.startswith("qa/qa2") for d in placed)


def test_clashes_no_rule_resolves_are_all_listed_by_the_core(make_tree, if_pm, tmp_path):
    """Two files of ORIGPATH's own QA folders, two imaging scripts: the layout does not stop; the
    plan lists every clash, and nothing is written."""
    root = make_tree({CAL: "#", "weather.png": "", "QA2/weather.png": "", "qa2/t.txt": "",
                      "QA2/t.txt": "", "a/scriptForImaging.py": "#", "b/scriptForImaging.py": "#"})
    dst = tmp_path / "2015.1.00123.S"
    with pytest.raises(Qa2Error) as failed:
        engine.package(root, dst, mode="fake", plugins=if_pm)
    clashes = [line for line in failed.value.lines if "[plan.clash]" in line]
    prefix = "plugin 'interferometric' in qa2_layout: "  # layout errors name plugin and hook
    assert all(line.startswith(prefix) for line in clashes), clashes
    assert sorted(line.removeprefix(prefix).split(":")[0] for line in clashes) == [
        "qa/t.txt", "qa/weather.png", "script/scriptForImaging.py"]
    assert not dst.exists()


@pytest.mark.parametrize("style", PIPELINE_STYLES)
def test_a_pipeline_style_on_a_manual_reduction_is_an_error_of_collect(make_tree, style):
    root = make_tree({CAL: "#", "scriptForImaging.py": "#"})
    collection = plugin.qa2_collect(delivery=load_delivery(root, style), context=None)
    (finding,) = [f for f in collection.findings if f.level is Level.ERROR]
    assert (finding.rule, finding.path) == ("style.manual", f"--style {style}")
    assert f"style {style} is for pipeline products" in finding.message
    assert all(name in finding.message for name in MANUAL_STYLES)
    assert not any(name in finding.message for name in PIPELINE_STYLES if name != style)


@pytest.mark.parametrize("style", ["", *MANUAL_STYLES])
def test_manual_styles_and_no_style_are_accepted(make_tree, style):
    root = make_tree({CAL: "#", "scriptForImaging.py": "#"})
    collection = plugin.qa2_collect(delivery=load_delivery(root, style), context=None)
    assert not [f for f in collection.findings if f.level is Level.ERROR]


def test_the_refusal_comes_before_anything_is_written(make_tree, if_pm, tmp_path):
    root = make_tree({CAL: "#", "scriptForImaging.py": "#"})
    piscript = make_tree({"scriptForPI.py": "#"}, "master")
    dst = tmp_path / "2015.1.00123.S"
    with pytest.raises(ValidationFailed) as refused:
        engine.package(root, dst, style="cycle4-pipe", mode="copy", piscript=piscript, plugins=if_pm)
    assert any("style.manual" in line and "cycle4-pipe" in line for line in refused.value.lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master", "reduction"]
