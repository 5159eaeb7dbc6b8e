"""Claim-and-rank detection and the plugin manager's contract with plugin authors."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from qa2core import SPECIFIC, Claim, hookimpl, hookspecs
from qa2core.engine import detect, load_delivery
from qa2core.errors import AmbiguousDelivery, NotDetected, PluginFailed
from qa2core.manager import get_plugin_manager


class Fixed:
    def __init__(self, score):
        self.score = score

    @hookimpl
    def qa2_detect(self, delivery):
        return None if self.score is None else Claim(self.score, f"always {self.score}")


class Broken:
    @hookimpl
    def qa2_detect(self, delivery):
        raise ValueError("boom")


def test_highest_claim_wins_whatever_the_registration_order(qa2_pm, toy_tree):
    qa2_pm.register(Fixed(50), name="low")
    qa2_pm.register(Fixed(80), name="high")
    qa2_pm.register(Fixed(None), name="silent")
    chosen, ranked = detect(toy_tree, qa2_pm)
    assert chosen == "high"
    assert [r.plugin for r in ranked] == ["high", "low"]

    other = get_plugin_manager(entrypoints=False)
    other.register(Fixed(80), name="high")
    other.register(Fixed(50), name="low")
    assert detect(toy_tree, other)[0] == "high"


def test_tie_at_the_top_lists_every_claim(qa2_pm, toy_tree):
    qa2_pm.register(Fixed(SPECIFIC), name="a")
    qa2_pm.register(Fixed(SPECIFIC), name="b")
    qa2_pm.register(Fixed(10), name="c")
    with pytest.raises(AmbiguousDelivery) as err:
        detect(toy_tree, qa2_pm)
    text = "\n".join(err.value.lines)
    assert "--plugin" in text
    assert all(name in text for name in ("a (score 80)", "b (score 80)", "c (score 10)"))


def test_no_claim_names_the_path_and_installed_plugins(qa2_pm, toy_tree):
    qa2_pm.register(Fixed(None), name="silent")
    with pytest.raises(NotDetected, match=r"no plugin claims this input.*silent"):
        detect(toy_tree, qa2_pm)


def test_forced_plugin_must_still_claim(qa2_pm, toy_tree):
    from qa2core.manager import Qa2Plugins

    qa2_pm.register(Fixed(SPECIFIC), name="a")
    qa2_pm.register(Fixed(SPECIFIC), name="b")
    qa2_pm.register(Fixed(None), name="silent")
    delivery = load_delivery(toy_tree)
    assert Qa2Plugins.choose(qa2_pm, delivery, "b")[0] == "b"
    with pytest.raises(NotDetected, match="'silent' does not claim"):
        qa2_pm.choose(delivery, "silent")


def test_plugin_exception_is_a_plugin_failure_not_a_decline(qa2_pm, toy_tree):
    qa2_pm.register(Broken(), name="broken")
    qa2_pm.register(Fixed(50), name="fine")
    with pytest.raises(PluginFailed, match=r"'broken' failed in qa2_detect.*boom"):
        detect(toy_tree, qa2_pm)


def test_misspelled_hook_is_refused_at_registration(qa2_pm):
    class Typo:
        @hookimpl
        def qa2_colect(self, delivery):
            return []

    with pytest.raises(pluggy.PluginValidationError, match="qa2_colect"):
        qa2_pm.register(Typo(), name="typo")


def test_every_hookspec_is_a_documented_manual_page():
    names = [n for n in dir(hookspecs.Qa2Specs) if n.startswith("qa2_")]
    assert {"qa2_collect", "qa2_detect", "qa2_layout", "qa2_validate"} <= set(names)
    for name in names:
        func = getattr(hookspecs.Qa2Specs, name)
        doc = inspect.getdoc(func) or ""
        params = [p for p in inspect.signature(func).parameters if p != "self"]
        assert "Called on" in doc, name
        for param in params:
            assert f":param {param}:" in doc or param in doc, (name, param)
        assert ":returns:" in doc, name


def test_installed_plugins_are_listed_with_their_distribution():
    infos = {i.name: i for i in get_plugin_manager().installed()}
    assert {"interferometric", "totalpower", "pipeline"} <= set(infos)
    assert infos["interferometric"].distribution == "qa2-interferometric"
    assert "qa2_detect" in infos["interferometric"].hooks


def test_blocked_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("QA2_DISABLE_PLUGINS", "pipeline,totalpower")
    names = {i.name for i in get_plugin_manager().installed()}
    assert "interferometric" in names and not names & {"pipeline", "totalpower"}
