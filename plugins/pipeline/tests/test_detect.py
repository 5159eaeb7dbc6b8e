"""Claims: pipeline runs and staged trees are ours (SPECIFIC); manual reductions are not."""

from __future__ import annotations

import json

import pytest

from qa2core import SPECIFIC, engine
from qa2core.errors import NotDetected
from qa2core.testing import tree_state


@pytest.mark.parametrize("name", ["cycle4", "cycle2", "cycle5", "tp", "sb"])
def test_every_run_era_is_claimed_with_its_mous(pm, runs, name):
    run = runs[name]
    chosen, ranked = engine.detect(run.root, pm)
    assert chosen == "pipeline"
    assert ranked[0].claim.score == SPECIFIC
    assert f"MOUS {run.mous}" in ranked[0].claim.reason
    assert ranked[0].claim.evidence == (run.tree,)


def test_mous_directory_as_root_is_claimed(pm, runs):
    run = runs["cycle4"]
    chosen, ranked = engine.detect(run.root / run.tree, pm)
    assert chosen == "pipeline"
    assert "uid___A001_X87c_X69" in ranked[0].claim.reason


def test_staged_tree_is_claimed(pm, runs, tmp_path):
    run = runs["cycle2"]
    before = tree_state(run.root)
    engine.stage(run.root, tmp_path / "STAGED", piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    chosen, ranked = engine.detect(tmp_path / "STAGED", pm)
    assert chosen == "pipeline"
    assert ranked[0].claim.score == SPECIFIC
    assert ranked[0].claim.reason.startswith("staged pipeline tree of MOUS uid___A002_X5ce05d_X18d")


def test_manual_reduction_is_declined(pm, make_tree):
    root = make_tree({
        "Calibration_X1e3b/uid___A002_Xb8e115_X1e3b.ms.scriptForCalibration.py": "es = aU.sfsdr()\n",
        "Imaging/scriptForImaging.py": "tclean()\n",
        "Imaging/calibrated_final_cont.image.pbcor.fits": b"SIMPLE  =                    T",
        "working/casa-20160418-101500.log": "a manual 'working' dir outside an OUS chain\n",
    })
    with pytest.raises(NotDetected):
        engine.detect(root, pm)


def test_cli_detect_names_pipeline_first(run_qa2, runs):
    result = run_qa2("detect", runs["cycle4"].root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[0] == "pipeline"
    as_json = json.loads(run_qa2("detect", runs["tp"].root, "--json").stdout)
    assert as_json["plugin"] == "pipeline"


def test_interferometric_plugin_declines_pipeline_input(runs, tmp_path, pm):
    """Cross-plugin: only meaningful when the interferometric plugin is installed."""
    interferometric = pytest.importorskip("qa2_interferometric.plugin")
    from qa2core.engine import load_delivery

    before = tree_state(runs["cycle4"].root)
    engine.stage(runs["cycle4"].root, tmp_path / "STAGED", piscript=runs["cycle4"].piscript,
                 plugins=pm)
    assert tree_state(runs["cycle4"].root) == before
    for root in (runs["cycle4"].root, tmp_path / "STAGED"):
        assert interferometric.qa2_detect(delivery=load_delivery(root)) is None


def test_manual_reduction_below_a_mous_directory_stays_interferometric(run_qa2, make_tree):
    pytest.importorskip("qa2_interferometric")
    root = make_tree({
        "uid___A002_Xb8e115_X1e3b.ms.scriptForCalibration.py": "es = aU.sfsdr()\n",
        "scriptForImaging.py": "tclean()\n",
    }, name="MOUS_uid___A001_X87c_X69/manual")
    result = run_qa2("detect", root)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[0] == "interferometric"
