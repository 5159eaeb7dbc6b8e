"""Composition and delegation: how one plugin adds to, or changes, what another packages.

* **Compose** (``qa2_contribute``): a plugin adds placements and findings to a package it does
  not win; the winner still lays the package out. One rule settles conflicts: a destination has
  one owner. A contribution that takes a destination the winner (or the core) placed, or that
  another contributor placed, refuses the run naming both plugins [compose.conflict].
* **Delegate** (:func:`delegate`): a real override of a built-in plugin. ``delegate(base)`` is a
  class whose hooks call ``base``'s with the arguments each takes, pass its context, findings
  and flags through, and leave only plain methods (``claim``, ``collect``, ``layout``,
  ``validate``) to override.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa2core.errors import Qa2Error
from qa2core.hooks.model import (
    OVERRIDE,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    PackageView,
    Placement,
)
from qa2core.planning import naming

if TYPE_CHECKING:
    from qa2core.planning.plan import Plan


@dataclass(frozen=True)
class Contribution:
    """What ``qa2_contribute`` adds: ``placements`` (sources are items of the delivery, as in
    ``qa2_layout``) and ``findings`` on the input (an ERROR refuses the run, rehearsal too)."""

    placements: Sequence[Placement] = ()
    findings: Sequence[Finding] = ()


@dataclass(frozen=True)
class Composition:
    """Every contribution to one run, checked against the winner's layout."""

    placements: tuple[Placement, ...] = ()
    findings: tuple[Finding, ...] = ()
    contributors: tuple[str, ...] = ()
    owners: dict[int, str] = field(default_factory=dict)  # id(placement) -> "plugin 'x' in HOOK"
    # The winner's placements, named "plugin W in qa2_layout" only when a plan fails: a dict of
    # 200,000 names made on every run cost ~60 MB for a message rarely shown.
    laid: Sequence[Placement] = ()
    winner: str = ""

    def owner(self, p: Placement, laid: frozenset[int]) -> str:
        if id(p) in self.owners:
            return self.owners[id(p)]
        return f"plugin {self.winner!r} in qa2_layout" if id(p) in laid else "the core"

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(s for p in self.placements for s in p.sources)

    def claimed(self, accounting: Any) -> Any:
        """``accounting`` without the items a contribution places among the not recognised."""
        left = tuple(rel for rel in accounting.unclassified if rel not in self.sources)
        return dataclasses.replace(accounting, unclassified=left)

    def plan(self, root: Path, items: Sequence[Any], placements: Sequence[Placement],
             readme: str = naming.README) -> Plan:
        """``make_plan``, with every problem named by the plugin and hook that placed it."""
        from qa2core.planning.plan import make_plan  # here: verify and tar never plan

        try:
            return make_plan(root, items, placements, readme)
        except Qa2Error as exc:
            groups: dict[str, list[Placement]] = {}
            laid = frozenset(map(id, self.laid))
            for p in placements:
                groups.setdefault(self.owner(p, laid), []).append(p)
            lines: list[str] = []
            for owner, group in groups.items():
                try:
                    make_plan(root, items, group)
                except Qa2Error as own:
                    lines += [f"{owner}: {line}" for line in own.lines]
            first: dict[str, str] = {}
            for owner, group in groups.items():
                for p in group:
                    if first.setdefault(p.dest, owner) != owner:
                        lines.append(f"{p.dest}: placed by {first[p.dest]} and by {owner} [plan.clash]")
            if not lines:
                raise
            raise Qa2Error(lines[0], lines=tuple(lines)) from exc


def combine(winner: str, placements: Sequence[Placement],
            contributions: dict[str, Contribution], member_token: str | None = None) -> Composition:
    """The contributions to ``winner``'s package, or a refusal listing every conflict."""
    owners: dict[int, str] = {}
    core = {d: "the core" for d in (naming.readme_name(member_token), naming.piscript_dest(member_token))}
    taken = ({p.dest: f"the winner, plugin {winner!r} (qa2_layout)" for p in placements} | core
             if any(c.placements for c in contributions.values()) else core)
    conflicts, added, findings = [], [], []
    for name, got in contributions.items():
        for p in got.placements:
            if p.dest in taken:
                conflicts.append(f"plugin {name!r} in qa2_contribute: {p.dest} is placed by "
                                 f"{taken[p.dest]}; a contribution adds destinations, it never "
                                 "takes one [compose.conflict]")
                continue
            taken[p.dest] = f"plugin {name!r} (qa2_contribute)"
            owners[id(p)] = f"plugin {name!r} in qa2_contribute"
            added.append(p)
        findings += got.findings
    if conflicts:
        raise Qa2Error(conflicts[0], lines=tuple(conflicts), plugin=winner)
    return Composition(tuple(added), tuple(findings),
                       tuple(n for n, c in contributions.items() if c.placements or c.findings), owners,
                       placements, winner)


# ---------------------------------------------------------------------------- delegation


def call(module: Any, hook: str, **kwargs: Any) -> Any:
    """``module``'s ``hook`` with the arguments it takes (pluggy's opt-in arguments, as the core
    calls it); ``None`` when it has no such hook."""
    impl = getattr(module, hook, None)
    if impl is None:
        return None
    wanted = inspect.signature(impl).parameters
    if any(p.kind is p.VAR_KEYWORD for p in wanted.values()):
        return impl(**kwargs)
    return impl(**{k: v for k, v in kwargs.items() if k in wanted})


def as_collection(got: Any) -> Collection:
    if isinstance(got, Collection):
        return Collection(tuple(got.items), tuple(got.findings))
    return Collection(tuple(got or ()))


class Delegate:
    """A plugin that is ``base`` plus changes. Subclass ``delegate(base)``, set ``kinds`` (your
    words for the items you take), override the plain methods, register an **instance**.

    Every hook calls ``base``'s first: its claim's context, its findings and rules (ERRORs
    included), its OUS UIDs and its ``QA2_STAGES`` flag come along unless you drop them.
    """

    base: Any = None
    kinds: tuple[str, ...] = ()
    QA2_STAGES = False

    # -- override these (plain methods, not hooks) ------------------------------------------
    def claim(self, delivery: Delivery, inner: Claim) -> Claim | None:
        """Your claim, given ``base``'s (``None`` here: never compete unless told). Use
        :meth:`over` to claim at OVERRIDE on evidence of your own, keeping ``base``'s context."""
        return None

    def collect(self, delivery: Delivery, collection: Collection, context: Any) -> Collection:
        return collection

    def layout(self, delivery: Delivery, mine: Sequence[Collected], placements: list[Placement],
               context: Any) -> Sequence[Placement]:
        """``placements`` are ``base``'s for every item not of your ``kinds``; ``mine`` are yours."""
        return placements

    def validate(self, view: PackageView, findings: list[Finding], context: Any) -> Sequence[Finding]:
        """``findings`` are ``base``'s: return them with yours (dropping them drops its ERRORs)."""
        return findings

    # -- helpers ---------------------------------------------------------------------------
    def call(self, hook: str, **kwargs: Any) -> Any:
        return call(self.base, hook, **kwargs)

    @staticmethod
    def over(inner: Claim, reason: str, evidence: Sequence[str] = ()) -> Claim:
        return Claim(OVERRIDE, f"{reason}, over: {inner.reason}", (*evidence, *inner.evidence[:4]),
                     inner.context)

    @staticmethod
    def take(collection: Collection, items: Sequence[Any], kind: str) -> Collection:
        """``collection`` with ``items`` classified as your ``kind`` instead of ``base``'s verdict."""
        rels = {i.relpath for i in items}
        kept = tuple(c for c in collection.items if c.item.relpath not in rels)
        return Collection(kept + tuple(Collected(i, kind) for i in items), collection.findings)


def delegate(base: Any) -> type[Delegate]:
    """A :class:`Delegate` class over the plugin module ``base`` (never its functions)."""
    from qa2core import hookimpl

    class Delegating(Delegate):
        @hookimpl
        def qa2_detect(self, delivery):
            inner = self.call("qa2_detect", delivery=delivery)
            return None if inner is None else self.claim(delivery, inner)

        @hookimpl
        def qa2_collect(self, delivery, context):
            got = as_collection(self.call("qa2_collect", delivery=delivery, context=context))
            return self.collect(delivery, got, context)

        @hookimpl
        def qa2_layout(self, delivery, collected, context):
            theirs = [c for c in collected if c.kind not in self.kinds]
            mine = [c for c in collected if c.kind in self.kinds]
            got = list(self.call("qa2_layout", delivery=delivery, collected=theirs, context=context))
            return list(self.layout(delivery, mine, got, context))

        @hookimpl
        def qa2_validate(self, view, context, plugin):
            got = list(self.call("qa2_validate", view=view, context=context, plugin=plugin) or ())
            return list(self.validate(view, got, context))

        @hookimpl
        def qa2_ous_uids(self, delivery, context):
            return self.call("qa2_ous_uids", delivery=delivery, context=context)

    Delegating.base = base
    Delegating.QA2_STAGES = getattr(base, "QA2_STAGES", False) is True
    Delegating.__name__ = Delegating.__qualname__ = f"delegate({getattr(base, '__name__', base)})"
    return Delegating
