"""The example site plugin, registered directly (no pip install): claims, delegation, a real
package and its verification."""

from __future__ import annotations

import importlib.metadata
import io
import json

import pytest
from qa2_arc_example import plugin
from qa2_interferometric import plugin as interferometric

from qa2core import OVERRIDE, SPECIFIC, Level, Mode, PackageView, engine
from qa2core.errors import NotDetected
from qa2core.styles import resolve_style
from qa2core.testing import tree_state
from qa2core.verify import verify

CAL = "uid___A002_X1_X2.ms.scriptForCalibration.py"
MARKED = {"ARC_SITE.txt": "ARC: test\n", CAL: "# calibration\n"}


def test_the_marker_claims_at_override_over_interferometric(arc_pm, make_tree):
    decision = engine.detect(make_tree(MARKED), arc_pm)
    assert decision.plugin == "arcsite"
    assert [(r.plugin, r.claim.score) for r in decision.ranked] == [
        ("arcsite", OVERRIDE), ("interferometric", SPECIFIC)]


def test_without_the_marker_interferometric_packages(arc_pm, make_tree):
    decision = engine.detect(make_tree({CAL: "#"}), arc_pm)
    assert decision.plugin == "interferometric"
    assert [r.plugin for r in decision.ranked] == ["interferometric"]


def test_a_marker_alone_or_below_the_top_is_not_claimed(arc_pm, make_tree):
    with pytest.raises(NotDetected):  # the interferometric plugin does not claim: nor does the site
        engine.detect(make_tree({"ARC_SITE.txt": "x", "notes.txt": "x"}, "alone"), arc_pm)
    nested = make_tree({"old/ARC_SITE.txt": "x", CAL: "#"}, "nested")
    assert engine.detect(nested, arc_pm).plugin == "interferometric"


def test_the_context_is_the_wrapped_plugins(arc_pm, make_tree):
    decision = engine.detect(make_tree(MARKED), arc_pm)
    inner = next(r.claim for r in decision.ranked if r.plugin == "interferometric")
    assert isinstance(decision.context, interferometric.Context)
    assert decision.context == inner.context


def test_the_marker_is_collected_and_placed_as_the_site_note(arc_pm, make_tree):
    report = engine.package(make_tree(MARKED), make_tree({}, "2015.1.00123.S"), dry_run=True,
                            plugins=arc_pm)
    assert report.plugin == "arcsite"
    assert "qa/arc_site_note.txt" in report.listing
    assert f"script/{CAL}" in report.listing  # the wrapped layout came along
    assert "ARC_SITE.txt" not in report.unclassified


def _view(files, content=None):
    opened = {} if content is None else {plugin.NOTE: content}
    return PackageView(tuple(files), resolve_style("cycle3-nopipe"), "arcsite", Mode.COPY,
                       open=lambda path: io.BytesIO(opened[path]) if path in opened else None)


def test_the_wrapped_plugins_error_rules_still_run(arc_pm):
    """The core validates with the packaging plugin's rules only (and its own, and cross-cutting
    plugins'): the interferometric ERROR rules run because the wrapper calls them."""
    view = _view(["README", "script/scriptForPI.py", plugin.NOTE], b"ARC: test\n")
    errors = {f.rule for f in arc_pm.validate(view, "arcsite") if f.level is Level.ERROR}
    assert "script.calibration" in errors  # interferometric: scriptForPI needs calibration scripts
    assert "arc.site_note" not in errors


@pytest.mark.parametrize(("files", "content"), [
    (["README"], None),  # no note
    (["README", plugin.NOTE], b" \n"),  # an empty note, content at hand
])
def test_the_site_rule(arc_pm, files, content):
    errors = {f.rule for f in arc_pm.validate(_view(files, content), "arcsite")
              if f.level is Level.ERROR}
    assert "arc.site_note" in errors


def test_a_real_reduction_is_packaged_with_the_site_note_and_verifies(arc_pm, arc_reduction, tmp_path):
    before = tree_state(arc_reduction.root)
    dst = tmp_path / arc_reduction.project
    report = engine.package(arc_reduction.root, dst, readme_path=arc_reduction.readme_header,
                            piscript=arc_reduction.piscript, style="cycle3-nopipe", mode="copy",
                            plugins=arc_pm)
    member = dst / report.member
    assert report.plugin == "arcsite"
    assert (member / plugin.NOTE).read_bytes() == (arc_reduction.root / "ARC_SITE.txt").read_bytes()
    for eb in arc_reduction.ebs:  # what the interferometric plugin makes of the reduction
        assert (member / "script" / f"{eb}.ms.scriptForCalibration.py").is_file()
        assert (member / "calibration" / f"{eb}.calibration.tgz").is_file()
    checked = verify(dst, plugins=arc_pm)
    assert checked.ok, [f.line() for f in checked.findings]
    assert checked.plugin == "arcsite"  # the recorded plugin still claims the package
    assert tree_state(arc_reduction.root) == before, "the source changed"


def test_installed_entry_point(run_qa2, make_tree):
    """After ``pip install``: the entry point loads, and the installed plugin takes part."""
    try:
        dist = importlib.metadata.distribution("qa2-arc-example")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("qa2-arc-example is not installed")
    result = run_qa2("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert (listed["arcsite"]["distribution"], listed["arcsite"]["version"]) == (
        "qa2-arc-example", dist.version)
    result = run_qa2("detect", make_tree(MARKED))
    assert result.stdout.split()[0] == "arcsite", result.stdout + result.stderr
