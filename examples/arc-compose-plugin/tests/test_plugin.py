"""The composition example: its contribution, its JSON rule, and the plugin check."""

from __future__ import annotations

import io

from qa2_arc_compose import plugin
from qa2_interferometric import plugin as interferometric

from qa2core import engine
from qa2core.plugin import Level, Mode, PackageView, check_plugin, resolve_style


def test_the_plugin_check_passes(reduction, piscript, make_tree, tmp_path):
    broken = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#", "ARC_SITE.txt": "x",
                        "arc_qa.json": "{not json"}, "broken")
    checked = check_plugin(plugin, "arccompose", reduction, tmp_path / "check", piscript=piscript,
                           others={"interferometric": interferometric}, broken=broken)
    assert checked.report.plugin == "interferometric"  # the winner still lays the package out
    assert {"qa/arc_site_note.txt", "qa/arc_qa.json"} <= set(checked.report.listing)


def test_nothing_is_added_without_the_marker(qa2_pm, make_tree, piscript, tmp_path):
    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(plugin, name="arccompose")
    plain = make_tree({"uid___A002_X1_X2.ms.scriptForCalibration.py": "#", "arc_qa.json": "{}"}, "plain")
    report = engine.package(plain, tmp_path / "2015.1.00123.S", piscript=piscript, dry_run=True,
                            plugins=qa2_pm)
    assert not any(name.startswith("qa/arc") for name in report.listing)


def test_the_json_rule(qa2_pm):
    qa2_pm.register(plugin, name="arccompose")
    view = PackageView(("README", "qa/arc_qa.json"), resolve_style("cycle3-nopipe"), "x", Mode.COPY,
                       open=lambda rel: io.BytesIO(b"[1, 2"))
    errors = [f for f in qa2_pm.validate(view, None) if f.rule == "arc.qa_json"]
    assert [f.level for f in errors] == [Level.ERROR]
