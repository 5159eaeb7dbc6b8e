"""The real manual TP reduction with the QA2 material of a hand-made reduction
(sampledata.add_qa2_material) in the JAO layout (beside each EB's calibration) and the NRAO
layout (one QA2/ folder): one package either way. A pipeline style on it is refused."""

from __future__ import annotations

import json
import shutil

import pytest
from qa2_totalpower import plugin

from qa2core import Level, engine
from qa2core.engine import load_delivery
from qa2core.errors import ValidationFailed
from qa2core.planning.styles import STYLES
from qa2core.testing import files_below
from qa2core.testing.sampledata import MANUAL_SB, Sample, add_qa2_material

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
EB = "uid___A002_Xc4f3ae_X57a5"
PIPELINE_STYLES = [s.name for s in STYLES.values() if s.pipeline]
PLOT_TABLES = ("tsys", "sky")


@pytest.fixture(scope="module")
def tp_layouts(tp_sample, tmp_path_factory) -> dict[str, Sample]:
    """The TP sample copied twice, the QA2 material added in each layout."""
    out = {}
    for layout in ("jao", "nrao"):
        root = tmp_path_factory.mktemp(layout) / "reduction"
        shutil.copytree(tp_sample.root, root, symlinks=True)
        add_qa2_material(root, tp_sample.ebs, layout, plot_tables=PLOT_TABLES)
        out[layout] = Sample(root, tp_sample.readme_header, tp_sample.piscript, tp_sample.ebs,
                             tp_sample.project)
    return out


def _package(run_qa2, sample, dst, *args, expect=0):
    dst.parent.mkdir(parents=True, exist_ok=True)
    r = run_qa2("package", sample.root, dst, "--readme", sample.readme_header, "--piscript",
                sample.piscript.parent, "--json", *args)
    assert r.exit_code == expect, r.stderr
    return r, json.loads(r.stdout)


def test_jao_and_nrao_layouts_give_the_same_tp_package(tp_layouts, run_qa2, tmp_path):
    members = {}
    for layout, sample in tp_layouts.items():
        dst = tmp_path / layout / sample.project
        _r, report = _package(run_qa2, sample, dst, "--mode", "copy")
        assert report["plugin"] == "totalpower" and report["unclassified"] == []
        members[layout] = dst
    jao, nrao = members["jao"], members["nrao"]
    assert files_below(jao) == files_below(nrao)
    assert (jao / "manifest-sha256.txt").read_bytes() == (nrao / "manifest-sha256.txt").read_bytes()
    names = files_below(jao / MEMBER)
    ebs = tp_layouts["jao"].ebs
    assert {f"qa/QA2_Report_{MANUAL_SB}.pdf", "qa/weather.png", "qa/textfile.txt",
            *(f"qa/{eb}.{n}" for eb in ebs for n in ("qa2_report.txt", "qa2_ampVsTime.png",
                                                     "ms.weather.png", "ms.listobs.txt")),
            *(f"qa/Calibration_X{eb[-4:]}/textfile.txt" for eb in ebs),
            *(f"calibration/{eb}.calibration.plots/{eb}.ms.{t}.plots/{t}_spw17.png"
              for eb in ebs for t in PLOT_TABLES)} <= names
    assert "calibration/allFluxes.txt" not in names  # no scriptForFluxCalibration.py in TP


@pytest.mark.parametrize("style", PIPELINE_STYLES)
def test_a_pipeline_style_on_a_manual_tp_reduction_is_refused(tp_layouts, run_qa2, tmp_path, style):
    dst = tmp_path / "out" / "2016.1.00234.S"
    r, report = _package(run_qa2, tp_layouts["jao"], dst, "--mode", "copy", "--style", style,
                         expect=1)
    (line,) = [x for x in r.stderr.splitlines() if "style.manual" in x]
    assert f"style {style} is for pipeline products" in line and "cycle2-nopipe" in line
    assert report["plugin"] == "totalpower" and any("style.manual" in e for e in report["errors"])
    assert list(dst.parent.iterdir()) == []


def test_the_refusal_is_a_finding_of_collect_and_nothing_is_written(tp_pm, make_tree, tmp_path):
    root = make_tree({f"{EB}.ms.scriptForSDCalibration.py": "#", "scriptForSDimaging.py": "#"})
    collection = plugin.qa2_collect(delivery=load_delivery(root, "cycle4-pipe"), context=None)
    errors = [(f.rule, f.path) for f in collection.findings if f.level is Level.ERROR]
    assert errors == [("style.manual", "--style cycle4-pipe")]
    dst = tmp_path / "2016.1.00234.S"
    with pytest.raises(ValidationFailed):
        engine.package(root, dst, style="cycle3-pipe1", mode="fake", plugins=tp_pm)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reduction"]


def test_tp_qa2_material_in_any_case_and_folder(tp_pm, make_tree):
    root = make_tree({f"c/{EB}.ms.scriptForSDCalibration.py": "#", "QA2/M100.QA2_Report.pdf": "",
                      f"c/{EB}.Qa2_Tsys.png": "", f"c/{EB}.ms.sky.plots/sky.png": "",
                      "c/qa2/textfile.txt": "", "c/weather.png": "", f"c/{EB}.ms.listobs": ""})
    delivery = load_delivery(root, "cycle3-nopipe")
    collected = [c for c in plugin.qa2_collect(delivery=delivery, context=None).items if not c.skip]
    placed = {p.dest for p in plugin.qa2_layout(delivery=delivery, collected=collected)}
    assert placed == {"qa/M100.QA2_Report.pdf", f"qa/{EB}.Qa2_Tsys.png", "qa/textfile.txt",
                      "qa/weather.png", f"qa/{EB}.ms.listobs", f"script/{EB}.ms.scriptForSDCalibration.py",
                      f"calibration/{EB}.calibration.plots/{EB}.ms.sky.plots/sky.png"}
