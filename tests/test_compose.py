"""Composition (qa2_contribute), delegation (qa2core.delegate) and what the host says about them."""

from __future__ import annotations

import json
import sys
import types

import pytest
from qa2_interferometric import plugin as interferometric

from qa2core import engine
from qa2core.errors import Qa2Error
from qa2core.plugin import (
    OVERRIDE,
    SPECIFIC,
    Claim,
    Contribution,
    Finding,
    Level,
    Placement,
    delegate,
    hookimpl,
)
from qa2core.testing.sampledata import pi_script_text

CAL = "uid___A002_X1_X2.ms.scriptForCalibration.py"


@pytest.fixture
def piscript(tmp_path):
    path = tmp_path / "scriptForPI.py"
    path.write_text(pi_script_text())
    return path


def _contributor(*placements, findings=()):
    module = types.ModuleType("contrib")
    module.qa2_contribute = hookimpl(lambda delivery: Contribution(placements, findings))
    return module


def _package(pm, make_tree, piscript, files=None, **kw):
    tree = make_tree(files or {CAL: "#", "notes.txt": "n"})
    return engine.package(tree, tree.parent / "2015.1.00123.S", piscript=piscript, dry_run=True,
                          plugins=pm, **kw)


def test_a_contribution_is_placed_and_its_source_is_recognised(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor(Placement("qa/notes.txt", sources=("notes.txt",), rule="c")), name="c")
    report = _package(qa2_pm, make_tree, piscript)
    assert report.plugin == "interferometric" and "qa/notes.txt" in report.listing
    assert "notes.txt" not in report.unclassified


def test_a_contribution_may_not_take_the_winners_destination(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor(Placement(f"script/{CAL}", sources=("notes.txt",))), name="c")
    with pytest.raises(Qa2Error) as err:
        _package(qa2_pm, make_tree, piscript)
    assert err.value.lines == (
        f"plugin 'c' in qa2_contribute: script/{CAL} is placed by the winner, plugin "
        "'interferometric' (qa2_layout); a contribution adds destinations, it never takes one "
        "[compose.conflict]",)


def test_two_contributors_to_one_destination_are_refused(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor(Placement("qa/n.txt", sources=("notes.txt",))), name="a")
    qa2_pm.register(_contributor(Placement("qa/n.txt", sources=("notes.txt",))), name="b")
    with pytest.raises(Qa2Error, match=r"plugin 'b' in qa2_contribute: qa/n.txt is placed by "
                                       r"plugin 'a' \(qa2_contribute\)"):
        _package(qa2_pm, make_tree, piscript)


def test_contributed_findings_refuse_the_rehearsal(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor(findings=(Finding(Level.ERROR, "c.bad", "notes.txt", "bad"),)), name="c")
    with pytest.raises(Qa2Error, match="refused"):
        _package(qa2_pm, make_tree, piscript)


def test_layout_problems_name_the_plugin_and_hook(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor(Placement("elsewhere/n.txt", sources=("notes.txt",), rule="c.r")),
                    name="c")
    with pytest.raises(Qa2Error) as err:
        _package(qa2_pm, make_tree, piscript)
    assert err.value.lines[0].startswith("plugin 'c' in qa2_contribute: plugin rule c.r placed a file")


def test_a_wrong_contribution_is_attributed(qa2_pm, make_tree, piscript):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(_contributor("qa/x"), name="c")
    with pytest.raises(Qa2Error, match=r"plugin 'c' failed in qa2_contribute: returned "
                                       r"Contribution.placements holding str at index 0"):
        _package(qa2_pm, make_tree, piscript)


def test_delegate_keeps_the_base_and_changes_only_what_is_asked(qa2_pm, make_tree, piscript):
    class Site(delegate(interferometric)):
        kinds = ("note",)

        def claim(self, delivery, inner):
            return self.over(inner, "site marker", ("SITE.txt",)) if "SITE.txt" in delivery.names() else None

        def collect(self, delivery, collection, context):
            return self.take(collection, [i for i in delivery.items if i.relpath == "SITE.txt"], "note")

        def layout(self, delivery, mine, placements, context):
            return [*placements, *(Placement("qa/site.txt", sources=(c.item.relpath,)) for c in mine)]

    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(Site(), name="site")
    tree = make_tree({CAL: "#", "SITE.txt": "x"})
    decision = engine.detect(tree, qa2_pm)
    assert [(r.plugin, r.claim.score) for r in decision.ranked] == [("site", OVERRIDE),
                                                                    ("interferometric", SPECIFIC)]
    assert decision.context == decision.ranked[1].claim.context
    report = engine.package(tree, tree.parent / "2015.1.00123.S", piscript=piscript, dry_run=True,
                            plugins=qa2_pm)
    assert {"qa/site.txt", f"script/{CAL}"} <= set(report.listing) and not report.unclassified
    view_errors = {f.rule for f in qa2_pm.validate(
        __import__("qa2core").PackageView(("README", "script/scriptForPI.py"), report_style(), "site"),
        "site") if f.level is Level.ERROR}
    assert "script.calibration" in view_errors  # the base's ERROR rules come along


def report_style():
    from qa2core.plugin import resolve_style

    return resolve_style("cycle3-nopipe")


def test_a_hook_that_prints_does_not_break_json(qa2_pm, make_tree, capsys):
    class Loud:
        @hookimpl
        def qa2_detect(self, delivery):
            print("probe: detect called")
            return Claim(SPECIFIC, "loud")

    qa2_pm.register(Loud(), name="loud")
    qa2_pm.choose(engine.load_delivery(make_tree({"a.txt": "x"})))
    out = capsys.readouterr()
    assert out.out == "" and "qa2: plugin loud: probe: detect called" in out.err


def test_a_hook_that_writes_to_file_descriptor_1_or_starts_a_chatty_program_keeps_stdout_clean(
        qa2_pm, make_tree, capfd):
    import os
    import subprocess

    class Raw:
        @hookimpl
        def qa2_detect(self, delivery):
            os.write(1, b"raw: fd 1\n")
            subprocess.run(["echo", "sub: a child's stdout"], check=True)
            raise RuntimeError("gave up")

    qa2_pm.register(Raw(), name="raw")
    with pytest.raises(Exception, match="gave up"):
        qa2_pm.choose(engine.load_delivery(make_tree({"a.txt": "x"})))
    out = capfd.readouterr()
    assert out.out == ""  # said on stderr even though the hook failed after it
    assert "qa2: plugin raw: raw: fd 1\nqa2: plugin raw: sub: a child's stdout\n" in out.err
    print("after")  # fd 1 is back where it was
    assert capfd.readouterr().out == "after\n"


def test_a_hook_that_writes_into_origpath_fails_under_the_testing_guard(qa2_pm, make_tree):
    class Writer:
        @hookimpl
        def qa2_detect(self, delivery):
            (delivery.root / "scribble.txt").write_text("x")

    qa2_pm.register(Writer(), name="writer")
    with pytest.raises(Qa2Error, match=r"plugin 'writer' failed in qa2_detect: wrote into ORIGPATH "
                                       r"\(scribble.txt\)"):
        qa2_pm.choose(engine.load_delivery(make_tree({"a.txt": "x"})))


def test_a_source_rewritten_by_a_hook_names_the_hook(make_tree, piscript):
    from qa2core.hooks.manager import get_plugin_manager

    class Rewriter:
        @hookimpl
        def qa2_validate(self, view):
            (tree / "notes.txt").write_text("rewritten, longer")

    pm = get_plugin_manager(entrypoints=False)
    pm.register(interferometric, name="interferometric")
    pm.register(_contributor(Placement("qa/notes.txt", sources=("notes.txt",))), name="c")
    pm.register(Rewriter(), name="rewriter")
    pm.pm.get_plugin("rewriter").QA2_CROSS_CUTTING = True
    tree = make_tree({CAL: "#", "notes.txt": "n"})
    with pytest.raises(Qa2Error) as err:
        engine.package(tree, tree.parent / "2015.1.00123.S", piscript=piscript, mode="copy",
                       plugins=pm)
    assert "source changed while packaging" in err.value.lines[0]
    assert err.value.lines[-1].startswith(f"{tree}/notes.txt changed while plugin 'rewriter' ran "
                                          "qa2_validate: hooks never write")


def test_json_on_a_tie_lists_the_tied_claims(tmp_path):
    import subprocess

    from qa2core.testing import write_tree

    tree = write_tree(tmp_path / "red", {CAL: "#", "uid___A002_X1_X2.scriptForSDCalibration.py": "#",
                                         "ARC_SITE.txt": "x"})
    site = tmp_path / "site"
    write_tree(site, {"qa2_t_tie.py": "from qa2core import hookimpl, Claim, OVERRIDE\n\n@hookimpl\n"
                                      "def qa2_detect(delivery):\n    return Claim(OVERRIDE, 'tie')\n",
                      "qa2_t_tie-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: qa2-t-tie\n"
                                                          "Version: 1.0\n",
                      "qa2_t_tie-1.0.dist-info/entry_points.txt": "[qa2]\ntie = qa2_t_tie\n"})
    qa2 = str(__import__("pathlib").Path(sys.executable).with_name("qa2"))
    done = subprocess.run([qa2, "detect", "--json", str(tree)], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(site)})
    out = json.loads(done.stdout)
    assert done.returncode == 1 and "ambiguous" in out["errors"][0]
    assert {(c["plugin"], c["score"]) for c in out["claims"]} >= {("tie", 90), ("totalpower", 90)}
