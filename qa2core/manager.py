"""The plugin manager: a typed facade over pluggy, built by a factory (no import-time global).

Detection is claim-and-rank: every plugin is asked, the core picks the highest score and
refuses ties. ``collect`` and ``layout`` then run on the winner only; ``validate`` is asked of
everyone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from qa2core import PROJECT, hookspecs
from qa2core.errors import AmbiguousDelivery, NotDetected, PluginFailed, UsageError
from qa2core.model import Claim, Collected, Delivery, Finding, PackageView, Placement
from qa2core.ous import OusUids

BUILTIN = "qa2core.builtin"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    distribution: str
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class RankedClaim:
    plugin: str
    claim: Claim

    def line(self) -> str:
        return f"{self.plugin} (score {self.claim.score}): {self.claim.reason}"


class Qa2Plugins:
    """What the engine needs from the plugins, with pluggy's untyped results wrapped."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object directly (tests, site scripts) and check its hook names."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()

    def names(self) -> tuple[str, ...]:
        # A blocked name stays listed with plugin None: it is not installed for us.
        return tuple(sorted(n for n, p in self.pm.list_name_plugin() if n != BUILTIN and p is not None))

    def installed(self) -> tuple[PluginInfo, ...]:
        dists = {id(p): d for p, d in self.pm.list_plugin_distinfo()}
        infos = []
        for name in self.names():
            plugin = self.pm.get_plugin(name)
            dist = dists.get(id(plugin))
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            infos.append(PluginInfo(
                name=name,
                version=dist.version if dist else "",
                distribution=dist.project_name if dist else "(registered directly)",
                hooks=hooks,
            ))
        return tuple(infos)

    def _call_one(self, hook: str, plugin: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin only, with pluggy's own argument handling."""
        target = self.pm.get_plugin(plugin)
        if target is None:
            raise UsageError(f"no plugin named {plugin!r}; installed: {', '.join(self.names())}")
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        try:
            results = caller(**kwargs)
        except Exception as exc:  # a plugin bug, reported with the plugin's name
            raise PluginFailed(f"plugin {plugin!r} failed in {hook}: {exc!r}") from exc
        return results[0] if results else None

    def claims(self, delivery: Delivery) -> tuple[RankedClaim, ...]:
        """Every plugin's claim on ``delivery``, highest score first."""
        ranked = []
        for name in self.names():
            claim = self._call_one("qa2_detect", name, delivery=delivery)
            if claim is not None:
                ranked.append(RankedClaim(name, claim))
        return tuple(sorted(ranked, key=lambda r: (-r.claim.score, r.plugin)))

    def choose(self, delivery: Delivery, forced: str | None = None) -> tuple[str, tuple[RankedClaim, ...]]:
        """The plugin that packages ``delivery``: the unique top claim, or ``forced`` if it claims."""
        ranked = self.claims(delivery)
        listing = tuple(r.line() for r in ranked)
        where = str(delivery.root)
        if forced:
            if forced not in self.names():
                raise UsageError(
                    f"--plugin {forced!r}: no such plugin; installed: {', '.join(self.names())}"
                )
            if not any(r.plugin == forced for r in ranked):
                raise NotDetected(f"{where}: plugin {forced!r} does not claim this input",
                                  lines=(f"{where}: plugin {forced!r} does not claim this input",
                                         *listing))
            return forced, ranked
        if not ranked:
            msg = (f"{where}: no plugin claims this input (installed: "
                   f"{', '.join(self.names()) or 'none'}); is it a reduction directory?")
            raise NotDetected(msg)
        top = [r for r in ranked if r.claim.score == ranked[0].claim.score]
        if len(top) > 1:
            msg = (f"{where}: ambiguous input, {len(top)} plugins claim it with score "
                   f"{top[0].claim.score}; choose one with --plugin NAME")
            raise AmbiguousDelivery(msg, lines=(msg, *listing))
        return ranked[0].plugin, ranked

    def collect(self, plugin: str, delivery: Delivery) -> tuple[Collected, ...]:
        return tuple(self._call_one("qa2_collect", plugin, delivery=delivery) or ())

    def layout(self, plugin: str, delivery: Delivery,
               collected: Sequence[Collected]) -> tuple[Placement, ...]:
        result = self._call_one("qa2_layout", plugin, delivery=delivery, collected=collected)
        return tuple(result or ())

    def ous_uids(self, plugin: str, delivery: Delivery) -> OusUids | None:
        return self._call_one("qa2_ous_uids", plugin, delivery=delivery)

    def validate(self, view: PackageView, plugin: str) -> tuple[Finding, ...]:
        try:
            results = self.pm.hook.qa2_validate(view=view, plugin=plugin)
        except Exception as exc:
            raise PluginFailed(f"a plugin failed in qa2_validate: {exc!r}") from exc
        return tuple(f for findings in results for f in findings or ())


def get_plugin_manager(*, entrypoints: bool = True, blocked: Sequence[str] = ()) -> Qa2Plugins:
    """Build a fresh manager: specs, built-in rules, then installed plugins (group ``qa2``).

    ``QA2_DISABLE_PLUGINS=a,b`` blocks installed plugins by name, like tox's deny-list.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs.Qa2Specs)
    from qa2core import builtin

    pm.register(builtin, name=BUILTIN)
    env_blocked = [n for n in os.environ.get("QA2_DISABLE_PLUGINS", "").split(",") if n]
    for name in (*blocked, *env_blocked):
        pm.set_blocked(name)
    if entrypoints:
        try:
            pm.load_setuptools_entrypoints(PROJECT)
        except Exception as exc:  # a broken site plugin must not hide the others' names
            raise PluginFailed(f"loading plugins from entry-point group 'qa2' failed: {exc!r}") from exc
    pm.check_pending()
    return Qa2Plugins(pm)
