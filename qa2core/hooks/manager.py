"""The plugin manager: a typed facade over pluggy, built by a factory. Hooks are called plugin by
plugin and every failure is one attributed line, ``plugin NAME failed in HOOK: ...``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from qa2core import PROJECT
from qa2core.errors import AmbiguousDelivery, NotDetected, PluginFailed, Qa2Error, UsageError
from qa2core.hooks import builtin, compose, hookcheck, hookspecs
from qa2core.hooks.model import Claim, Collected, Collection, Delivery, Finding, PackageView, Placement
from qa2core.planning.ous import OusUids

BUILTIN = "qa2core.hooks.builtin"


@dataclass(frozen=True)
class PluginInfo:  # error: set when the entry point failed to load, the line to show the user
    name: str
    version: str
    distribution: str
    hooks: tuple[str, ...]
    error: str = ""


@dataclass(frozen=True)
class RankedClaim:
    plugin: str
    claim: Claim

    def line(self) -> str:
        return f"{self.plugin} (score {self.claim.score}): {self.claim.reason}"


@dataclass(frozen=True)
class Decision:  # who packages the input: the winning plugin, its claim, every claim ranked
    plugin: str
    claim: Claim
    ranked: tuple[RankedClaim, ...]

    @property
    def context(self) -> Any:
        return self.claim.context


class Qa2Plugins:
    """What the engine needs from the plugins: each call attributed, each result type-checked."""

    def __init__(self, pm: pluggy.PluginManager, guard: bool = False) -> None:
        self.pm, self.guard = pm, guard  # guard (qa2core.testing): a hook that writes into ORIGPATH fails
        self._dists: dict[str, tuple[str, str]] = {}  # entry-point name -> (version, distribution)
        self._broken: dict[str, PluginInfo] = {}
        self.windows, self._root = hookcheck.Windows(), None

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object; each mistake in its hooks refuses it, one line each."""
        if lines := hookcheck.problems(self.pm, plugin, name):
            raise hookcheck.PluginInvalid(plugin, "; ".join(lines))
        try:
            self.pm.register(plugin, name=name)  # pluggy checks every hookimpl before any change
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.get_plugin(name) is plugin:
                self.pm.unregister(plugin, name=name)
            raise hookcheck.PluginInvalid(plugin, hookcheck.one_line(exc, name)) from exc

    def load_entrypoints(self) -> None:
        """Load the ``qa2`` entry points one by one; a broken one is recorded, not raised."""
        for ep in (e for e in entry_points(group=PROJECT) if not self.pm.is_blocked(e.name)):
            dist = (ep.dist.version, ep.dist.name) if ep.dist else ("", "(unknown distribution)")
            try:
                self.register(ep.load(), ep.name)
                self._dists[ep.name] = dist
            except Exception as exc:  # an import or registration error of that plugin alone
                why = exc if isinstance(exc, hookcheck.PluginInvalid) else repr(exc)
                error = (f"plugin {ep.name!r} (distribution {dist[1]} {dist[0]}) failed to load: "
                         f"{why}; skip it with QA2_DISABLE_PLUGINS={ep.name}")
                self._broken.setdefault(ep.name, PluginInfo(ep.name, *dist, (), error))

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, p in self.pm.list_name_plugin() if n != BUILTIN and p is not None))

    def broken(self) -> tuple[PluginInfo, ...]:
        return tuple(info for _, info in sorted(self._broken.items()))

    def installed(self) -> tuple[PluginInfo, ...]:  # loaded and broken (``error`` set) plugins
        loaded = [PluginInfo(n, *self._dists.get(n, ("", "(registered directly)")), tuple(sorted(
            h.name for h in self.pm.get_hookcallers(self.pm.get_plugin(n)) or ()))) for n in self.names()]
        return tuple(sorted([*self.broken(), *loaded], key=lambda i: i.name))

    def require_healthy(self) -> None:
        if lines := tuple(info.error for info in self.broken()):
            raise PluginFailed("; ".join(lines), lines=lines)

    def _call(self, hook: str, plugin: str, /, **kwargs: Any) -> list[Any]:  # kwargs may hold plugin=
        """``hook`` on ``plugin`` alone through pluggy (opt-in arguments; pluggy drops None results,
        and [None] also stands for "no hookimpl"): its results, checked."""
        if self.pm.get_plugin(plugin) is None:
            raise UsageError(f"no plugin named {plugin!r}; installed: {', '.join(self.names())}")
        failed = f"plugin {plugin!r} failed in {hook}:"
        if hook in ("qa2_collect", "qa2_layout") and hookcheck.no_impl(self.pm, plugin, hook):
            raise PluginFailed(f"{failed} it has no {hook} hook; a plugin that claims must have one")
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin]
        self._root = getattr(kwargs.get("delivery"), "root", None) or self._root
        with hookcheck.running(self, plugin, hook, self._root):  # stdout kept, time noted, guard
            results = self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs) or [None]
        for wrong in filter(None, (hookcheck.wrong(hook, result) for result in results)):
            raise PluginFailed(f"{failed} returned {wrong}, expected {hookcheck.results()[hook][1]}")
        if len(results) > 1 and hook != "qa2_validate":
            raise PluginFailed(f"{failed} {len(results)} implementations, expected one")
        return [r for r in results if r is not None]

    def blame(self, exc: Qa2Error) -> Qa2Error:  # a changed source, named with the hook running then
        return self.windows.blame(exc)

    def claims(self, delivery: Delivery) -> tuple[RankedClaim, ...]:
        """Every claim on ``delivery``, best first; none while a plugin is broken (it may claim)."""
        self.require_healthy()
        ranked = [RankedClaim(name, claim) for name in self.names()
                  for claim in self._call("qa2_detect", name, delivery=delivery)]
        return tuple(sorted(ranked, key=lambda r: (-r.claim.score, r.plugin)))

    def choose(self, delivery: Delivery, forced: str | None = None) -> Decision:
        """The plugin that packages ``delivery``: the unique top claim, or ``forced`` if it claims."""
        ranked = self.claims(delivery)
        listing, where = tuple(r.line() for r in ranked), str(delivery.root)
        if forced and forced not in self.names():
            raise UsageError(f"--plugin {forced!r}: no such plugin; installed: {', '.join(self.names())}")
        if forced and not any(r.plugin == forced for r in ranked):
            line = f"{where}: plugin {forced!r} does not claim this input"
            raise NotDetected(line, lines=(line, *listing))
        if not ranked:
            raise NotDetected(f"{where}: no plugin claims this input (installed: "
                              f"{', '.join(self.names()) or 'none'}); is it a reduction directory?")
        top = [r for r in ranked if r.claim.score == ranked[0].claim.score]
        if len(top) > 1 and not forced:
            msg = (f"{where}: ambiguous input, {len(top)} plugins claim it with score "
                   f"{top[0].claim.score}; choose one with --plugin NAME")
            err = AmbiguousDelivery(msg, lines=(msg, *listing))
            err.json = {"claims": hookcheck.claims_json(ranked)}  # --json lists the tied claims
            raise err
        win = next(r for r in ranked if r.plugin == forced) if forced else ranked[0]
        return Decision(win.plugin, win.claim, ranked)

    def collect(self, plugin: str, delivery: Delivery, context: Any = None) -> Collection:
        (got,) = self._call("qa2_collect", plugin, delivery=delivery, context=context)
        return Collection(*(tuple(got.items), tuple(got.findings)) if isinstance(got, Collection)
                          else (tuple(got),))

    def layout(self, plugin: str, delivery: Delivery, collected: Sequence[Collected],
               context: Any = None) -> tuple[Placement, ...]:
        return tuple(*self._call("qa2_layout", plugin, delivery=delivery, collected=collected,
                                 context=context))

    def contribute(self, decision: Decision, delivery: Delivery, collection: Collection,
                   placements: Sequence[Placement]) -> compose.Composition:
        """``qa2_contribute`` on every plugin but the winner: their additions, checked."""
        got = {n: c for n in self.names() if n != decision.plugin
               for c in self._call("qa2_contribute", n, delivery=delivery, winner=decision.plugin,
                                   collected=collection.items, placements=tuple(placements))}
        return compose.combine(decision.plugin, placements, got,
                               delivery.options.member_token)

    def ous_uids(self, plugin: str, delivery: Delivery, context: Any = None) -> OusUids | None:
        return next(iter(self._call("qa2_ous_uids", plugin, delivery=delivery, context=context)), None)

    def marked(self, plugin: str, flag: str) -> bool:  # QA2_CROSS_CUTTING, QA2_STAGES
        return getattr(self.pm.get_plugin(plugin), flag, False) is True

    def validate(self, view: PackageView, plugin: str | None, context: Any = None) -> tuple[Finding, ...]:
        """Rules of ``plugin`` (with its context), the core, cross-cutting plugins and plugins that
        only contribute (context None)."""
        cross = sorted(n for n, _p in self.pm.list_name_plugin()
                       if self.marked(n, "QA2_CROSS_CUTTING") or hookcheck.contributor(self.pm, n))
        return tuple(f for name in dict.fromkeys(n for n in (plugin, BUILTIN, *cross) if n)
                     for result in self._call("qa2_validate", name, view=view, plugin=plugin or "",
                                              context=context if name == plugin else None)
                     for f in result)


def get_plugin_manager(*, entrypoints: bool = True, blocked: Sequence[str] = (),
                       guard: bool = False) -> Qa2Plugins:
    """Specs, built-in rules, then entry points ``qa2`` not blocked nor in QA2_DISABLE_PLUGINS=a,b."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs.Qa2Specs)
    pm.register(builtin, name=BUILTIN)
    for name in (*blocked, *os.environ.get("QA2_DISABLE_PLUGINS", "").replace(" ", "").split(",")):
        if name and name != BUILTIN:  # the core's own rules cannot be switched off
            pm.set_blocked(name)
    plugins = Qa2Plugins(pm, guard)
    if entrypoints:
        plugins.load_entrypoints()
    pm.check_pending()
    return plugins
