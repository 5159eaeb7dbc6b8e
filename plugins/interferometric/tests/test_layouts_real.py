"""A real manual reduction laid out by hand two ways (sampledata.build_manual_layouts: JAO, QA2
material beside each EB's calibration; NRAO, the same files in one QA2/ folder), packaged through
the ``qa2`` command with the installed plugins: one package, every QA2 file in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa2core import engine
from qa2core.errors import ValidationFailed
from qa2core.planning.styles import STYLES
from qa2core.testing import files_below, tree_state
from qa2core.testing.sampledata import MANUAL_SB

MEMBER = "sg_ouss_id/group_ouss_id/member_ouss_id"
EBS = ("uid___A002_Xb8e115_X1e3b", "uid___A002_Xb8e115_X2a41")
CAL_DIRS = ("Calibration_X1e3b", "Calibration_X2a41")
PIPELINE_STYLES = [s.name for s in STYLES.values() if s.pipeline]

QA = {
    f"qa/QA2_Report_{MANUAL_SB}.pdf", "qa/weather.png", "qa/calibrated_final.ms.listobs",
    *(f"qa/{eb}.{name}" for eb in EBS for name in (
        "qa2_ampVsTime.png", "qa2_bandpass.png", "qa2_report.txt", "ms.weather.png",
        "ms.listobs.txt", *(f"ms.split.cal.qa2/{eb}.ms.split.cal.{plot}.png" for plot in (
            "bandpass_amp_spw0", "phase_vs_time_field1", "amp_vs_uvdist")),
        "ms.split.cal.qa2/textfile.txt")),
    # the per-EB qa2/ folders hold files of one name: each below its source directory
    *(f"qa/{cal}/{name}" for cal in CAL_DIRS
      for name in ("ampVsTime.png", "bandpass.png", "phaseVsTime.png", "textfile.txt")),
}
CALIBRATION = {
    "calibration/allFluxes.txt",
    *(f"calibration/{eb}.calibration.tgz" for eb in EBS),
    *(f"calibration/{eb}.calibration.plots/{eb}.ms.{table}.plots/{plot}_spw{spw}.png"
      for eb in EBS for table, plot in (("tsys", "tsys"), ("split.bandpass", "bandpass"))
      for spw in (17, 19)),
}


@pytest.fixture
def package(run_qa2, tmp_path):
    """``qa2 package <layout> PACKPATH --json ...``; proves afterwards that no source changed."""
    before: dict[Path, dict] = {}

    def run(sample, *args, expect=0):
        before.setdefault(sample.root, tree_state(sample.root))
        dst = tmp_path / sample.root.parent.name / sample.project
        dst.parent.mkdir(exist_ok=True)
        r = run_qa2("package", sample.root, dst, "--readme", sample.readme_header,
                    "--piscript", sample.piscript.parent, "--style", "cycle3-nopipe", "--json",
                    *args)
        assert r.exit_code == expect, r.stderr
        return r, json.loads(r.stdout), dst

    yield run
    for root, state in before.items():
        assert tree_state(root) == state, f"the source {root} changed"


def test_both_layouts_are_claimed_by_the_interferometric_plugin(manual_layouts, run_qa2):
    for sample in manual_layouts.values():
        r = run_qa2("detect", sample.root, "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["plugin"] == "interferometric", r.stdout


@pytest.mark.parametrize("layout", ["jao", "nrao"])
def test_every_qa2_file_is_packaged_in_each_layout(package, manual_layouts, layout):
    _r, report, dst = package(manual_layouts[layout])
    assert report["unclassified"] == [] and report["errors"] == []
    names = files_below(dst / MEMBER)
    assert {n for n in names if n.startswith("qa/")} == QA
    assert {n for n in names if n.startswith("calibration/")} == CALIBRATION
    last = sorted(Path(s["source"]).name for s in report["skipped"]
                  if s["reason"] == "CASA task parameter file")
    assert last == ["applycal.last", "applycal.last", "importasdm.last", "importasdm.last",
                    "tclean.last"]
    readme = (dst / MEMBER / "README").read_text()
    assert f"QA2_Report_{MANUAL_SB}.pdf" in readme and "tsys_spw17.png" in readme


def test_jao_and_nrao_layouts_give_the_same_package(package, manual_layouts):
    """Same names, same bytes: the two manifests are equal, and so is the README."""
    _r, jao, jao_dst = package(manual_layouts["jao"], "--mode", "copy")
    _r, nrao, nrao_dst = package(manual_layouts["nrao"], "--mode", "copy")
    assert files_below(jao_dst) == files_below(nrao_dst)
    assert (jao_dst / "manifest-sha256.txt").read_bytes() == (
        nrao_dst / "manifest-sha256.txt").read_bytes()
    assert (jao_dst / MEMBER / "README").read_bytes() == (nrao_dst / MEMBER / "README").read_bytes()
    # where each QA2 file came from differs; where it went does not
    sources = {layout: {f["dest"]: f["source"] for f in report["files"]}
               for layout, report in (("jao", jao), ("nrao", nrao))}
    pdf = f"{MEMBER}/qa/QA2_Report_{MANUAL_SB}.pdf"
    assert Path(sources["jao"][pdf]).parent.name == "reduction"
    assert Path(sources["nrao"][pdf]).parent.name == "QA2"


def test_calibration_plot_folders_keep_their_files(package, manual_layouts):
    sample = manual_layouts["jao"]
    _r, report, dst = package(sample, "--mode", "copy")
    eb, cal = EBS[0], CAL_DIRS[0]
    packed = dst / MEMBER / f"calibration/{eb}.calibration.plots/{eb}.ms.tsys.plots/tsys_spw19.png"
    source = sample.root / cal / f"{eb}.ms.tsys.plots/tsys_spw19.png"
    assert packed.read_bytes() == source.read_bytes()
    assert packed.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    pdf = dst / MEMBER / f"qa/QA2_Report_{MANUAL_SB}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-1.4") and pdf.read_bytes().rstrip().endswith(b"%%EOF")
    with_rule = {f["dest"].split(f"{MEMBER}/", 1)[1]: f["rule"] for f in report["files"]}
    assert with_rule[f"calibration/{eb}.calibration.plots/{eb}.ms.tsys.plots/tsys_spw19.png"] == \
        "calibration_plot"
    assert with_rule["calibration/allFluxes.txt"] == "flux_values"
    assert with_rule[f"qa/{cal}/textfile.txt"] == "qa_report"


@pytest.mark.parametrize("style", PIPELINE_STYLES)
def test_a_pipeline_style_on_the_manual_reduction_is_refused(package, manual_layouts, style):
    r, report, dst = package(manual_layouts["jao"], "--mode", "copy", "--style", style, expect=1)
    (line,) = [x for x in r.stderr.splitlines() if "style.manual" in x]
    assert line.startswith("qa2: error:") and f"style {style} is for pipeline products" in line
    assert "cycle3-nopipe" in line and "cycle8-nopipe" in line
    assert any("style.manual" in e for e in report["errors"])
    assert sorted(p.name for p in dst.parent.iterdir()) == []  # nothing written, not even the lock


def test_the_engine_refuses_a_pipeline_style_before_writing(manual_layouts, if_pm, tmp_path):
    sample = manual_layouts["nrao"]
    dst = tmp_path / sample.project
    with pytest.raises(ValidationFailed) as refused:
        engine.package(sample.root, dst, readme_path=sample.readme_header, piscript=sample.piscript,
                       style="cycle4-pipe", mode="fake", plugins=if_pm)
    assert refused.value.plugin == "interferometric"
    assert [line for line in refused.value.lines if "style.manual" in line]
    assert list(tmp_path.iterdir()) == []
