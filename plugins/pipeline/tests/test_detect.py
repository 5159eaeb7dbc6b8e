"""Claims: pipeline runs and staged trees are ours (SPECIFIC); manual reductions are not.

qa2_detect looks at names, types and sizes only: it opens no file, not even the PPR.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib

import pytest
from qa2_pipeline import plugin, ppr
from qa2_pipeline.context import PipelineInput

from qa2core import GENERIC, SPECIFIC, Purpose
from qa2core.testing import sampledata, tree_state


@pytest.mark.parametrize("name", ["cycle4", "cycle2", "cycle5", "tp", "tp2017", "sb"])
def test_every_run_era_is_claimed_with_its_mous(runs, lib, name):
    run = runs[name]
    claim = plugin.qa2_detect(delivery=lib.deliver(run.root))
    assert claim.score == SPECIFIC
    assert f"MOUS {run.mous}" in claim.reason
    assert claim.evidence == (run.tree,)
    assert isinstance(claim.context, PipelineInput)


def test_mous_directory_as_root_is_claimed(runs, lib):
    run = runs["cycle4"]
    claim = plugin.qa2_detect(delivery=lib.deliver(run.root / run.tree))
    assert claim.score == SPECIFIC
    assert "uid___A001_X87c_X69" in claim.reason


def _no_file_may_be_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every way of opening or reading a file raise (and the PPR reader too)."""
    tried: list[str] = []

    def refuse(what: str):
        def opened(*args, **kwargs):
            tried.append(f"{what}{args[:1]}")
            raise AssertionError(f"qa2_detect opened a file: {what}{args[:1]}")
        return opened

    for target, name in ((builtins, "open"), (io, "open"), (os, "open"),
                         (pathlib.Path, "open"), (pathlib.Path, "read_bytes"),
                         (pathlib.Path, "read_text"), (ppr, "read"), (ppr, "read_stream"),
                         (ppr, "parse")):
        monkeypatch.setattr(target, name, refuse(f"{getattr(target, '__name__', target)}.{name}"))
    return tried


@pytest.mark.parametrize("name", ["cycle4", "cycle2", "cycle5", "tp", "tp2017", "sb"])
def test_detect_opens_no_file(runs, lib, monkeypatch, name):
    """The PPR is there and readable, but detect must not need it: with every way of opening
    a file refused, the claim is the same and still names the MOUS (from the MOUS_ directory)."""
    run = runs[name]
    delivery = lib.deliver(run.root)  # the core's scan may read table.info; detect may not
    with monkeypatch.context() as m:
        tried = _no_file_may_be_opened(m)
        claim = plugin.qa2_detect(delivery=delivery)
    assert tried == []
    assert claim.score == SPECIFIC and f"MOUS {run.mous}" in claim.reason
    assert "ppr" not in vars(claim.context)  # the cached PPR is not read yet


@pytest.mark.parametrize(("name", "evidence"), [
    ("tp", "jyperk.csv"),  # 2015: .tar.gz products and a loose jyperk.csv
    ("tp2017", "uid___A001_X1273_X2d2.hsd_calimage."),  # 2017: jyperk.csv only in auxproducts.tgz
])
def test_tp_run_is_said_to_be_single_dish_from_names_only(runs, lib, monkeypatch, name, evidence):
    delivery = lib.deliver(runs[name].root)
    with monkeypatch.context() as m:
        tried = _no_file_may_be_opened(m)
        claim = plugin.qa2_detect(delivery=delivery)
    assert tried == []
    assert claim.reason.startswith(f"pipeline run of MOUS {runs[name].mous} (")
    assert "; single-dish Total Power (hsd) data: " + evidence in claim.reason


@pytest.mark.parametrize("name", ["cycle4", "cycle2", "cycle5", "sb"])
def test_interferometric_runs_are_not_said_to_be_single_dish(runs, lib, name):
    assert "single-dish" not in plugin.qa2_detect(delivery=lib.deliver(runs[name].root)).reason


def test_staged_tp_tree_is_said_to_be_single_dish(run_qa2, tmp_path, monkeypatch, lib):
    staged = sampledata.build_staged_tp_tree(tmp_path)
    before = tree_state(staged)
    delivery = lib.deliver(staged)
    with monkeypatch.context() as m:
        _no_file_may_be_opened(m)
        claim = plugin.qa2_detect(delivery=delivery)
    assert claim.reason == ("staged pipeline tree of MOUS uid___A001_X145_X1a2 (PPR or pipeline "
                            "script in script/); single-dish Total Power (hsd) data: jyperk.csv; "
                            "era Cycle 2-3 (tar.gz products): style cycle3-pipe1")
    assert claim.style == "cycle3-pipe1"  # what qa2 detect suggests (rules.ERAS)
    result = run_qa2("detect", staged)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.split()[0] == "pipeline" and "single-dish Total Power (hsd)" in first
    assert tree_state(staged) == before


def test_staged_tree_names_its_mous_from_product_names_or_says_ppr(lib, make_tree, monkeypatch):
    """Placeholder names: the MOUS comes from ``<M>.weblog.tgz`` & co.; without such names only
    the PPR knows, and detect says so instead of reading it."""
    member = "sg_ouss_id/group_ouss_id/member_ouss_id"
    named = make_tree({f"{member}/script/PPR_uid___A001_X87c_X6a.xml": "<SciPipeRequest/>",
                       f"{member}/qa/uid___A001_X87c_X69.weblog.tgz": b"",
                       f"{member}/calibration/uid___A002_Xba0af7_X6409.ms.calapply.txt": ""},
                      name="named")
    bare = make_tree({f"{member}/script/PPR_uid___A001_X87c_X6a.xml": "<SciPipeRequest/>",
                      f"{member}/qa/weblog.tgz": b""}, name="bare")
    deliveries = [lib.deliver(named), lib.deliver(bare)]
    with monkeypatch.context() as m:
        _no_file_may_be_opened(m)
        first, second = (plugin.qa2_detect(delivery=d) for d in deliveries)
    assert first.reason.startswith("staged pipeline tree of MOUS uid___A001_X87c_X69 ")
    assert second.reason.startswith("staged pipeline tree of MOUS from PPR ")


def test_detect_on_a_package_for_verify(lib, make_tree):
    """qa2 verify detects on the package tree (purpose VERIFY): real member names name the MOUS,
    and the context knows the PPR is already where it is."""
    member = "science_goal.uid___A001_X87c_X67/group.uid___A001_X87c_X68/member.uid___A001_X87c_X69"
    root = make_tree({f"{member}/script/PPR_uid___A001_X87c_X6a.xml": "<SciPipeRequest/>",
                      f"{member}/README": ""}, name="2016.1.01435.S")
    claim = plugin.qa2_detect(delivery=lib.deliver(root, purpose=Purpose.VERIFY))
    assert claim.score == SPECIFIC and "MOUS uid___A001_X87c_X69" in claim.reason
    assert claim.context.ppr_dest == "script/PPR_uid___A001_X87c_X6a.xml"


def test_ous_chain_without_trees_is_claimed_generic(runs, lib, copy_run):
    run = copy_run(runs["cycle2"])
    os.rename(run.root / run.tree / "working", run.root / run.tree / "workng")
    os.rename(run.root / run.tree / "products", run.root / run.tree / "working_X5e5")
    claim = plugin.qa2_detect(delivery=lib.deliver(run.root))
    assert claim.score == GENERIC


def test_manual_reduction_is_declined_by_the_hook(lib, make_tree):
    root = make_tree({
        "Calibration_X1e3b/uid___A002_Xb8e115_X1e3b.ms.scriptForCalibration.py": "es = aU.sfsdr()\n",
        "Imaging/scriptForImaging.py": "tclean()\n",
    })
    assert plugin.qa2_detect(delivery=lib.deliver(root)) is None


# ---------------------------------------------------------------------------- through the core


def test_staged_tree_is_claimed(pm, runs, tmp_path):
    from qa2core import engine

    run = runs["cycle2"]
    before = tree_state(run.root)
    engine.stage(run.root, tmp_path / "STAGED", piscript=run.piscript, plugins=pm)
    assert tree_state(run.root) == before
    decision = engine.detect(tmp_path / "STAGED", pm)
    assert decision.plugin == "pipeline"
    assert decision.claim.score == SPECIFIC
    assert decision.claim.reason.startswith("staged pipeline tree of MOUS uid___A002_X5ce05d_X18d")


def test_manual_reduction_is_declined(pm, make_tree):
    from qa2core import engine
    from qa2core.errors import NotDetected

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
    from qa2core import engine
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


@pytest.mark.parametrize("code, style", [("2017.1.00271.S", "cycle5-pipe"),
                                         ("2022.1.00001.S", "cycle5-pipe"),  # Cycle 9
                                         ("2023.1.00001.S", "cycle10-pipe")])  # Cycle 10
def test_the_suggested_style_follows_the_project_codes_cycle(lib, tmp_path, code, style):
    run = sampledata.build_auxproducts_run(tmp_path)  # a 2017 run: manifest and auxproducts
    renamed = run.root.with_name(code + run.root.name[len(run.project):])
    run.root.rename(renamed)
    claim = plugin.qa2_detect(delivery=lib.deliver(renamed))
    assert claim.style == style, claim.reason
