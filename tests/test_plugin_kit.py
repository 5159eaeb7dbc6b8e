"""The plugin kit: qa2core.plugin exports, the plugin check (it passes good plugins, 0.2-style
ones included, and fails each trap), and `qa2 plugin new` output that passes its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from qa2_interferometric import plugin as interferometric

import qa2core
import qa2core.plugin as api
from qa2core.plugin import Claim, Collection, check_plugin, delegate, hookimpl
from qa2core.testing.sampledata import pi_script_text

QA2 = Path(sys.executable).with_name("qa2")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arc-site-plugin" / "src"
CAL = "uid___A002_X1_X2.ms.scriptForCalibration.py"


@pytest.fixture
def piscript(tmp_path):
    path = tmp_path / "scriptForPI.py"
    path.write_text(pi_script_text())
    return path


@pytest.fixture
def sample(make_tree):
    return make_tree({CAL: "# cal\n", "ARC_SITE.txt": "ARC: test\n", "casa-1.log": "log\n"})


def test_one_module_exports_what_a_plugin_and_its_tests_need():
    assert api.API_VERSION >= (1, 0)
    assert api.hookimpl is qa2core.hookimpl and api.Claim is qa2core.Claim  # 0.2 names unchanged
    for name in ("Contribution", "delegate", "resolve_style", "PluginFailed", "Purpose", "Mode",
                 "OusUids", "check_plugin", "tree_state", "Qa2Result"):
        assert getattr(api, name) is not None and name in api.__all__


def test_a_0_2_style_wrapper_passes_the_check_unchanged(sample, piscript, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from qa2_arc_example import plugin as arcsite  # examples/arc-site-plugin, as written for 0.2

    checked = check_plugin(arcsite, "arcsite", sample, tmp_path / "w", piscript=piscript,
                           others={"interferometric": interferometric}, wraps="interferometric")
    assert checked.report.plugin == "arcsite" and checked.verified.plugin == "arcsite"


class _Site(delegate(interferometric)):
    kinds = ("note",)

    def claim(self, delivery, inner):
        marked = any(i.name in ("ARC_SITE.txt", "site.txt") for i in delivery.items)
        return self.over(inner, "site marker") if marked else None

    def collect(self, delivery, collection, context):
        return self.take(collection, [i for i in delivery.items if i.relpath == "ARC_SITE.txt"], "note")

    def layout(self, delivery, mine, placements, context):
        return [*placements, *(api.Placement("qa/site.txt", sources=(c.item.relpath,)) for c in mine)]


def _check(plugin, sample, piscript, tmp_path, **kw):
    return check_plugin(plugin, "site", sample, tmp_path / "w", piscript=piscript,
                        others={"interferometric": interferometric}, wraps="interferometric", **kw)


def test_a_delegate_passes_the_check(sample, piscript, tmp_path):
    _check(_Site(), sample, piscript, tmp_path)


@pytest.mark.parametrize(("trap", "said"), [
    ("drops_findings", "drops interferometric's findings"),
    ("new_context", "does not pass interferometric's Claim.context on"),
    ("unclassified", "items left unclassified that interferometric alone classifies"),
    ("no_verify_claim", "verify judged the package by"),
    ("fake_skips", "the rehearsal (fake) and the real run find different things"),
    ("prints", "a hook printed: qa2: plugin site: hello"),
])
def test_the_check_fails_on_each_trap(sample, piscript, tmp_path, trap, said):
    class Trap(_Site):
        def claim(self, delivery, inner):
            if trap == "no_verify_claim" and delivery.options.purpose is api.Purpose.VERIFY:
                return None
            if trap == "prints":
                print("hello")
            got = super().claim(delivery, inner)
            if got and trap == "new_context":
                return Claim(got.score, got.reason, got.evidence, {"mine": 1})
            return got

        def collect(self, delivery, collection, context):
            got = super().collect(delivery, collection, context)
            if trap == "unclassified":
                kept = tuple(c for c in got.items if not c.item.name.endswith(".log"))
                return Collection(kept, got.findings)
            return got

        def validate(self, view, findings, context):
            if trap == "drops_findings":
                return []
            if trap == "fake_skips" and view.mode is api.Mode.COPY:
                return [*findings, api.Finding(api.Level.WARN, "site.copy_only", "README", "x")]
            return findings

    with pytest.raises(AssertionError, match="plugin check failed") as err:
        _check(Trap(), sample, piscript, tmp_path)
    assert said in str(err.value)


def test_the_check_fails_a_hook_that_writes_into_origpath(sample, piscript, tmp_path):
    class Writer(_Site):
        def collect(self, delivery, collection, context):
            (delivery.root / "scribble.txt").write_text("x")
            return super().collect(delivery, collection, context)

    with pytest.raises(AssertionError, match=r"plugin 'site' failed in qa2_collect: wrote into ORIGPATH"):
        _check(Writer(), sample, piscript, tmp_path)


def test_a_qa2_function_without_hookimpl_is_reported_at_load_time(qa2_pm):
    module = types.ModuleType("forgot")
    module.qa2_detect = hookimpl(lambda delivery: None)
    module.qa2_collect = lambda delivery: []
    with pytest.raises(api.PluginFailed, match=r"^plugin 'forgot': qa2_collect is not marked "
                                               r"@hookimpl, so qa2 never calls it"):
        qa2_pm.register(module, name="forgot")


def test_qa2_plugin_new_writes_a_project_that_passes_its_own_tests(tmp_path):
    done = subprocess.run([str(QA2), "plugin", "new", "arcnode", "--dir", str(tmp_path / "p")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    src = (tmp_path / "p" / "src" / "qa2_arcnode" / "plugin.py").read_text()
    assert "qa2_contribute" in src and len(src.splitlines()) <= 30
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "p" / "src")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", str(tmp_path / "p")], env=env,
                           capture_output=True, text=True, cwd=tmp_path / "p")
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout + tests.stderr
    again = subprocess.run([str(QA2), "plugin", "new", "arcnode", "--dir", str(tmp_path / "p")],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
