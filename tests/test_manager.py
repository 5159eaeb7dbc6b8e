"""The plugin manager's contract: claim-and-rank, every plugin failure attributed to its plugin
and hook, validate on the right plugins, and broken entry points that never hide the others."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pluggy
import pytest

from qa2core import (
    GENERIC,
    SPECIFIC,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    ItemType,
    Level,
    PackageView,
    Placement,
    SourceItem,
    hookimpl,
)
from qa2core.errors import AmbiguousDelivery, NotDetected, PluginFailed, UsageError
from qa2core.hooks import hookspecs
from qa2core.hooks.manager import BUILTIN, Decision, get_plugin_manager
from qa2core.planning.ous import OusUids
from qa2core.planning.styles import resolve_style
from qa2core.testing import write_tree

QA2 = Path(sys.executable).with_name("qa2")
HOOKS = ("qa2_detect", "qa2_collect", "qa2_layout", "qa2_validate", "qa2_ous_uids")


@pytest.fixture
def delivery(tmp_path: Path) -> Delivery:
    items = (SourceItem("scripts/run.py", ItemType.FILE, 12), SourceItem("notes.txt", ItemType.FILE, 3))
    return Delivery(tmp_path, items, resolve_style(""))


def _view(delivery: Delivery, files: tuple[str, ...] = ("README",)) -> PackageView:
    return PackageView(files=files, style=delivery.style, plugin="p")


class Fixed:
    def __init__(self, score, context=None):
        self.score, self.context = score, context

    @hookimpl
    def qa2_detect(self, delivery):
        if self.score is not None:
            return Claim(self.score, f"always {self.score}", context=self.context)
        return None


class Scripted:
    """Implements every hook with every argument; ``qa2_x=value`` is what hook qa2_x returns
    (an exception instance is raised instead)."""

    def __init__(self, **results):
        self.results = {"qa2_detect": Claim(GENERIC, "scripted"), "qa2_collect": [], "qa2_layout": [],
                        "qa2_validate": [], "qa2_ous_uids": None, **results}

    def _give(self, hook):
        result = self.results[hook]
        if isinstance(result, Exception):
            raise result
        return result

    @hookimpl
    def qa2_detect(self, delivery):
        return self._give("qa2_detect")

    @hookimpl
    def qa2_collect(self, delivery, context):
        return self._give("qa2_collect")

    @hookimpl
    def qa2_layout(self, delivery, collected, context):
        return self._give("qa2_layout")

    @hookimpl
    def qa2_validate(self, view, context, plugin):
        return self._give("qa2_validate")

    @hookimpl
    def qa2_ous_uids(self, delivery, context):
        return self._give("qa2_ous_uids")


def _run(pm, hook: str, delivery: Delivery):
    """The manager call that runs ``hook`` on plugin "p"."""
    return {
        "qa2_detect": lambda: pm.choose(delivery),
        "qa2_collect": lambda: pm.collect("p", delivery, None),
        "qa2_layout": lambda: pm.layout("p", delivery, (), None),
        "qa2_validate": lambda: pm.validate(_view(delivery), "p", None),
        "qa2_ous_uids": lambda: pm.ous_uids("p", delivery, None),
    }[hook]()


# -- claim and rank ----------------------------------------------------------------------------

def test_highest_claim_wins_whatever_the_registration_order(qa2_pm, delivery):
    qa2_pm.register(Fixed(50), name="low")
    qa2_pm.register(Fixed(80, context={"eb": 3}), name="high")
    qa2_pm.register(Fixed(None), name="silent")
    decision = qa2_pm.choose(delivery)
    assert isinstance(decision, Decision)
    assert decision.plugin == "high" and decision.claim.reason == "always 80"
    assert decision.context == {"eb": 3}  # the winner's own view, handed back to its hooks
    assert [r.plugin for r in decision.ranked] == ["high", "low"]

    other = get_plugin_manager(entrypoints=False)
    other.register(Fixed(80), name="high")
    other.register(Fixed(50), name="low")
    assert other.choose(delivery).plugin == "high"


def test_tie_at_the_top_lists_every_claim(qa2_pm, delivery):
    qa2_pm.register(Fixed(SPECIFIC), name="a")
    qa2_pm.register(Fixed(SPECIFIC), name="b")
    qa2_pm.register(Fixed(10), name="c")
    with pytest.raises(AmbiguousDelivery) as err:
        qa2_pm.choose(delivery)
    text = "\n".join(err.value.lines)
    assert "--plugin" in text
    assert all(name in text for name in ("a (score 80)", "b (score 80)", "c (score 10)"))
    assert qa2_pm.choose(delivery, "b").plugin == "b"  # --plugin settles a tie


def test_no_claim_names_the_path_and_installed_plugins(qa2_pm, delivery):
    qa2_pm.register(Fixed(None), name="silent")
    with pytest.raises(NotDetected, match=r"no plugin claims this input.*silent"):
        qa2_pm.choose(delivery)


def test_forced_plugin_must_still_claim(qa2_pm, delivery):
    qa2_pm.register(Fixed(SPECIFIC), name="a")
    qa2_pm.register(Fixed(50, context="mine"), name="b")
    qa2_pm.register(Fixed(None), name="silent")
    forced = qa2_pm.choose(delivery, "b")
    assert (forced.plugin, forced.claim.score, forced.context) == ("b", 50, "mine")
    with pytest.raises(NotDetected, match="'silent' does not claim") as err:
        qa2_pm.choose(delivery, "silent")
    assert "a (score 80): always 80" in err.value.lines  # the claims that were made
    with pytest.raises(UsageError, match="--plugin 'nosuch': no such plugin; installed: a, b, silent"):
        qa2_pm.choose(delivery, "nosuch")


# -- every failure attributed --------------------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_an_exception_in_any_hook_names_the_plugin_and_the_hook(qa2_pm, delivery, hook):
    qa2_pm.register(Fixed(10), name="fine")
    qa2_pm.register(Scripted(**{hook: ValueError("boom\nsecond line")}), name="p")
    with pytest.raises(PluginFailed) as err:
        _run(qa2_pm, hook, delivery)
    assert err.value.lines == (f"plugin 'p' failed in {hook}: ValueError('boom\\nsecond line')",)
    assert isinstance(err.value.__cause__, ValueError)  # the traceback stays reachable


WRONG = [
    ("qa2_detect", {"score": 80, "reason": "x"}, "returned dict, expected Claim or None"),
    ("qa2_detect", Claim("80", "x"), "returned Claim with a str score, expected Claim or None"),
    ("qa2_collect", None, "returned nothing, expected Collection or a sequence of Collected"),
    ("qa2_collect", "scripts/run.py", "returned str, expected Collection or a sequence of Collected"),
    ("qa2_collect", [{"item": "run.py"}],
     "returned list holding dict at index 0, expected Collection or a sequence of Collected"),
    ("qa2_collect", Collection(items=(), findings=("broken PPR",)),
     "returned Collection.findings holding str at index 0, expected Collection or a sequence of "
     "Collected"),
    ("qa2_layout", None, "returned nothing, expected a sequence of Placement"),
    ("qa2_layout", {"script/run.py": "scripts/run.py"}, "returned dict, expected a sequence of Placement"),
    ("qa2_layout", [Placement("script/run.py"), ("product/b", "b")],
     "returned list holding tuple at index 1, expected a sequence of Placement"),
    ("qa2_validate", Finding(Level.ERROR, "r", "README", "m"),
     "returned Finding, expected a sequence of Finding or None"),
    ("qa2_validate", ["ERROR: bad"], "returned list holding str at index 0, expected a sequence of "
                                     "Finding or None"),
    ("qa2_ous_uids", ("uid___A001_X1_X1",) * 3, "returned tuple, expected OusUids or None"),
]


@pytest.mark.parametrize(("hook", "result", "text"), WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_a_wrong_result_in_any_hook_names_the_plugin_the_hook_and_the_type(qa2_pm, delivery, hook,
                                                                           result, text):
    qa2_pm.register(Scripted(**{hook: result}), name="p")
    with pytest.raises(PluginFailed) as err:
        _run(qa2_pm, hook, delivery)
    assert err.value.lines == (f"plugin 'p' failed in {hook}: {text}",)


def test_a_winner_without_collect_fails_in_collect(qa2_pm, delivery):
    qa2_pm.register(Fixed(50), name="p")
    decision = qa2_pm.choose(delivery)
    with pytest.raises(PluginFailed, match=r"^plugin 'p' failed in qa2_collect: it has no qa2_collect "
                                           r"hook; a plugin that claims must have one$"):
        qa2_pm.collect(decision.plugin, delivery, decision.context)
    assert qa2_pm.ous_uids("p", delivery, None) is None  # optional: no hookimpl is no answer


def test_results_are_normalised_and_correct_ones_pass(qa2_pm, delivery):
    run, notes = delivery.items
    finding = Finding(Level.ERROR, "input.ppr", "PPR.xml", "unreadable")
    uids = OusUids("uid___A001_X1_X1", "uid___A001_X1_X2", "uid___A001_X1_X3")
    qa2_pm.register(Scripted(qa2_collect=[Collected(run, "script")], qa2_layout=[Placement("script/run.py")],
                             qa2_ous_uids=uids, qa2_validate=None), name="p")
    assert qa2_pm.collect("p", delivery) == Collection((Collected(run, "script"),))
    assert qa2_pm.layout("p", delivery, ()) == (Placement("script/run.py"),)
    assert qa2_pm.ous_uids("p", delivery) == uids
    assert qa2_pm.validate(_view(delivery), "p") == qa2_pm.validate(_view(delivery), None)  # None: none

    other = get_plugin_manager(entrypoints=False)
    other.register(Scripted(qa2_collect=Collection([Collected(notes, "x", skip="why")], [finding])),
                   name="p")
    got = other.collect("p", delivery)
    assert got.items == (Collected(notes, "x", skip="why"),) and got.findings == (finding,)
    assert isinstance(got.items, tuple) and isinstance(got.findings, tuple)


def test_a_hook_may_take_only_some_arguments(qa2_pm, delivery):
    class Few:
        @hookimpl
        def qa2_collect(self, delivery):
            return [Collected(item, "any") for item in delivery.items]

        @hookimpl
        def qa2_layout(self, collected):
            return [Placement(f"product/{c.item.name}", sources=(c.item.relpath,)) for c in collected]

    qa2_pm.register(Few(), name="few")
    collected = qa2_pm.collect("few", delivery, "ctx").items
    assert [p.dest for p in qa2_pm.layout("few", delivery, collected, "ctx")] == [
        "product/run.py", "product/notes.txt"]


# -- validate: the packaging plugin, the built-in rules, cross-cutting plugins --------------------

class Rules:
    def __init__(self, rule: str):
        self.rule, self.calls = rule, []

    @hookimpl
    def qa2_validate(self, view, context, plugin):
        self.calls.append((context, plugin))
        return [Finding(Level.WARN, self.rule, "README", "seen")]


class CrossCutting(Rules):
    QA2_CROSS_CUTTING = True


def _site_module() -> types.ModuleType:
    """A site-policy plugin as a module, the usual form: module attribute, opt-in arguments."""
    module = types.ModuleType("qa2_site_policy")
    module.QA2_CROSS_CUTTING = True
    module.qa2_validate = hookimpl(lambda view: [Finding(Level.WARN, "site.policy", "README", "site")])
    return module


def test_validate_asks_the_packager_the_builtin_rules_and_cross_cutting_plugins(qa2_pm, delivery):
    packager, other, cross = Rules("p.rule"), Rules("other.rule"), CrossCutting("cross.rule")
    qa2_pm.register(packager, name="p")
    qa2_pm.register(other, name="other")
    qa2_pm.register(cross, name="cross")
    qa2_pm.register(_site_module(), name="site")
    findings = qa2_pm.validate(_view(delivery), "p", {"ppr": "read once"})
    rules = [f.rule for f in findings]
    assert rules[0] == "p.rule"  # the packaging plugin first
    assert {"p.rule", "cross.rule", "site.policy", "structure.subdirs"} <= set(rules)
    assert "other.rule" not in rules and other.calls == []
    assert packager.calls == [({"ppr": "read once"}, "p")]
    assert cross.calls == [(None, "p")]  # no context of its own; told who packages

    # verify of a package nobody claims: built-in and cross-cutting rules only
    rules = {f.rule for f in qa2_pm.validate(_view(delivery), None)}
    assert {"cross.rule", "site.policy", "structure.subdirs"} <= rules and "p.rule" not in rules
    assert cross.calls[-1] == (None, "")


def test_each_validate_call_is_attributed(qa2_pm, delivery):
    class BadSite(CrossCutting):
        @hookimpl
        def qa2_validate(self, view, context, plugin):
            raise KeyError("policy.xml")

    qa2_pm.register(Rules("p.rule"), name="p")
    qa2_pm.register(BadSite("x"), name="badsite")
    with pytest.raises(PluginFailed) as err:
        qa2_pm.validate(_view(delivery), "p", None)
    assert err.value.lines == ("plugin 'badsite' failed in qa2_validate: KeyError('policy.xml')",)

    clean = get_plugin_manager(entrypoints=False)
    clean.register(Scripted(qa2_validate={"README": "missing"}), name="p")
    with pytest.raises(PluginFailed, match=r"^plugin 'p' failed in qa2_validate: returned dict"):
        clean.validate(_view(delivery), "p", None)


def test_a_plugin_registered_under_another_name_keeps_its_rules(qa2_pm, delivery):
    class Toy(Fixed):
        @hookimpl
        def qa2_validate(self, view, context):
            if view.glob("script/forbidden.py"):
                return [Finding(Level.ERROR, "toy.forbidden", "script/forbidden.py", "forbidden")]
            return []

    qa2_pm.register(Toy(GENERIC, context="toy view"), name="toy-as-installed-by-a-site")
    decision = qa2_pm.choose(delivery)
    view = _view(delivery, ("README", "script/forbidden.py"))
    findings = qa2_pm.validate(view, decision.plugin, decision.context)
    assert "ERROR: script/forbidden.py: forbidden [toy.forbidden]" in [f.line() for f in findings]


def test_builtin_rules_are_not_a_plugin_to_choose_or_block(qa2_pm, delivery, monkeypatch):
    assert BUILTIN not in qa2_pm.names()
    monkeypatch.setenv("QA2_DISABLE_PLUGINS", BUILTIN)
    pm = get_plugin_manager(entrypoints=False, blocked=(BUILTIN,))
    assert "structure.readme" in {f.rule for f in pm.validate(_view(delivery, ()), None)}


# -- registration ------------------------------------------------------------------------------------

def test_misspelled_hook_is_refused_at_registration_and_leaves_no_trace(qa2_pm, delivery):
    class Typo:
        @hookimpl
        def qa2_detect(self, delivery):
            return Claim(GENERIC, "typo")

        @hookimpl
        def qa2_colect(self, delivery):
            return []

    with pytest.raises(pluggy.PluginValidationError) as err:
        qa2_pm.register(Typo(), name="typo")
    assert str(err.value) == "plugin 'typo': unknown hook 'qa2_colect'; did you mean qa2_collect?"
    assert isinstance(err.value, PluginFailed) and err.value.lines == (str(err.value),)
    assert "typo" not in qa2_pm.names()
    qa2_pm.pm.check_pending()  # nothing of it left pending
    qa2_pm.register(Fixed(10), name="fine")
    assert qa2_pm.choose(delivery).plugin == "fine"


def test_every_hookspec_is_a_documented_manual_page():
    names = [n for n in dir(hookspecs.Qa2Specs) if n.startswith("qa2_")]
    assert set(HOOKS) <= set(names)
    for name in names:
        func = getattr(hookspecs.Qa2Specs, name)
        doc = inspect.getdoc(func) or ""
        params = [p for p in inspect.signature(func).parameters if p != "self"]
        assert "Called on" in doc, name
        for param in params:
            assert f":param {param}:" in doc or param in doc, (name, param)
        assert ":returns:" in doc, name


def test_installed_plugins_are_listed_with_their_distribution():
    pm = get_plugin_manager()
    infos = {i.name: i for i in pm.installed()}
    assert {"interferometric", "totalpower", "pipeline"} <= set(infos)
    assert infos["interferometric"].distribution == "qa2-interferometric"
    assert "qa2_detect" in infos["interferometric"].hooks
    assert not any(i.error for i in infos.values()) and pm.broken() == ()
    pm.require_healthy()


def test_blocked_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("QA2_DISABLE_PLUGINS", "pipeline, totalpower")
    names = {i.name for i in get_plugin_manager().installed()}
    assert "interferometric" in names and not names & {"pipeline", "totalpower"}
    monkeypatch.delenv("QA2_DISABLE_PLUGINS")
    assert "pipeline" not in get_plugin_manager(blocked=("pipeline",)).names()


# -- broken entry points -----------------------------------------------------------------------

def write_dist(site: Path, dist: str, version: str, eps: dict[str, str], modules: dict[str, str]) -> Path:
    """An installed distribution as pip leaves it: ``<dist>-<version>.dist-info`` and modules."""
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    lines = "".join(f"{name} = {target}\n" for name, target in eps.items())
    return write_tree(site, {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/entry_points.txt": f"[qa2]\n{lines}",
        **{f"{module}.py": text for module, text in modules.items()},
    })


FINE = """
from qa2core import hookimpl

@hookimpl
def qa2_detect(delivery):
    return None
"""


def test_entry_points_that_fail_to_load_are_recorded_and_the_others_load(tmp_path, monkeypatch,
                                                                          delivery, request):
    site = tmp_path / "site"
    eps = {"bar": "qa2_t_bar", "baz": "qa2_t_baz", "gone": "qa2_t_bar:nothing"}
    write_dist(site, "qa2-bar", "2.0", eps, {
        "qa2_t_bar": "from qa2core import hookimpl\n\n@hookimpl\ndef qa2_detect(delivery, colour):\n"
                     "    return None\n",
        "qa2_t_baz": "from qa2core import hookimpl\n\n@hookimpl\ndef qa2_colect(delivery):\n"
                     "    return []\n",
    })
    write_dist(site, "qa2-fine", "0.5", {"fine": "qa2_t_fine"}, {"qa2_t_fine": FINE})
    request.addfinalizer(lambda: [sys.modules.pop(m, None) for m in ("qa2_t_bar", "qa2_t_baz", "qa2_t_fine")])
    monkeypatch.delenv("QA2_DISABLE_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(site))

    pm = get_plugin_manager()
    broken = {i.name: i for i in pm.broken()}
    assert set(broken) == {"bar", "baz", "gone"}
    assert broken["bar"].error == (
        "plugin 'bar' (distribution qa2-bar 2.0) failed to load: plugin 'bar': hook qa2_detect "
        "takes argument 'colour', which qa2 never gives (qa2_detect gets: delivery); skip it with "
        "QA2_DISABLE_PLUGINS=bar")
    assert broken["baz"].error == (
        "plugin 'baz' (distribution qa2-bar 2.0) failed to load: plugin 'baz': unknown hook "
        "'qa2_colect'; did you mean qa2_collect?; skip it with QA2_DISABLE_PLUGINS=baz")
    assert broken["gone"].error.startswith("plugin 'gone' (distribution qa2-bar 2.0) failed to load: "
                                           "AttributeError(")
    assert all(i.error.endswith(f"; skip it with QA2_DISABLE_PLUGINS={i.name}") for i in broken.values())
    assert (broken["bar"].distribution, broken["bar"].version, broken["bar"].hooks) == ("qa2-bar", "2.0", ())
    assert {"fine", "interferometric", "pipeline", "totalpower"} <= set(pm.names())
    assert not set(broken) & set(pm.names())
    assert [i.name for i in pm.installed()] == sorted([*pm.names(), *broken])

    with pytest.raises(PluginFailed) as err:
        pm.require_healthy()
    assert err.value.lines == tuple(broken[n].error for n in ("bar", "baz", "gone"))
    with pytest.raises(PluginFailed, match=r"plugin 'bar' .* failed to load"):
        pm.choose(delivery)  # no ranking while a plugin that might claim is missing

    monkeypatch.setenv("QA2_DISABLE_PLUGINS", "bar,baz,gone")
    healthy = get_plugin_manager()
    healthy.require_healthy()
    assert "fine" in healthy.names() and healthy.broken() == ()


def _qa2(*args, env):
    return subprocess.run([str(QA2), *map(str, args)], env=env, capture_output=True, text=True)


def test_broken_entry_point_in_the_qa2_command(tmp_path):
    site = tmp_path / "site"
    write_dist(site, "qa2-foo", "1.0", {"foo": "qa2_t_foo"},
               {"qa2_t_foo": "raise ImportError('qa2-foo needs the frobnicator')\n"})
    write_dist(site, "qa2-fine", "0.5", {"fine": "qa2_t_fine"}, {"qa2_t_fine": FINE})
    env = {k: v for k, v in os.environ.items() if k != "QA2_DISABLE_PLUGINS"} | {"PYTHONPATH": str(site)}
    line = ("plugin 'foo' (distribution qa2-foo 1.0) failed to load: "
            "ImportError('qa2-foo needs the frobnicator'); skip it with QA2_DISABLE_PLUGINS=foo")

    listed = _qa2("plugins", env=env)
    assert listed.returncode == 1, listed.stderr
    rows = {row.split()[0]: row for row in listed.stdout.splitlines()}
    assert rows["foo"] == f"{'foo':<16} BROKEN: {line}"
    assert rows["fine"].split()[1:3] == ["qa2-fine", "0.5"]
    assert "BROKEN" not in rows["interferometric"] + rows["pipeline"] + rows["totalpower"]

    as_json = _qa2("plugins", "--json", env=env)
    assert as_json.returncode == 1
    plugins = {p["name"]: p for p in json.loads(as_json.stdout)["plugins"]}
    assert plugins["foo"]["error"] == line and plugins["foo"]["distribution"] == "qa2-foo"
    assert plugins["interferometric"]["error"] == "" and plugins["fine"]["version"] == "0.5"

    red = write_tree(tmp_path / "red", {"uid___A002_X1_X2.ms.scriptForCalibration.py": "#"})
    refused = _qa2("detect", red, env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f"qa2: error: {line}"]

    env["QA2_DISABLE_PLUGINS"] = "foo"
    assert _qa2("plugins", env=env).returncode == 0
    detected = _qa2("detect", red, env=env)
    assert detected.returncode == 0, detected.stderr
    assert detected.stdout.split()[0] == "interferometric"
