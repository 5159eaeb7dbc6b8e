"""A small toolkit for plugins that hold their domain rules as tables.

A plugin lists :class:`NameRule` rows (first match wins) and calls :func:`classify`; rows can
depend on a style switch by name, so styles stay data on both sides.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, replace

from qa2core.hooks.model import (
    UID,
    UNCLASSIFIED,
    Collected,
    Finding,
    ItemType,
    Level,
    PackageView,
    SourceItem,
)
from qa2core.planning.styles import STYLES, Style


def eb_of(name: str) -> str | None:
    """The sanitized EB (or OUS) UID in a name, e.g. ``uid___A002_Xb8e115_X1e3b``."""
    m = UID.search(name)
    return m.group(0) if m else None


@functools.lru_cache(maxsize=512)
def fnmatch_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for fnmatch ``patterns`` (case-sensitive, whole name), compiled once
    per pattern tuple: ``fnmatchcase`` per pattern per item adds up over 200,000 items."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@functools.lru_cache(maxsize=512)
def fnmatch_screen(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """A cheap test, true for every name that matches one of ``patterns`` (and perhaps a few
    others: confirm hits with :func:`fnmatch_regex`). ``*.xml`` becomes ``endswith(".xml")``,
    ``PPR*`` ``startswith("PPR")``, ``*.hsd_*`` a substring test: string methods, where a
    regex of many ``.*`` alternatives backtracks over every name."""
    suffixes: list[str] = []
    prefixes: list[str] = []
    inner: list[str] = []
    other: list[str] = []
    for pattern in patterns:
        pieces = pattern.split("*")
        if "?" in pattern or "[" in pattern:
            other.append(pattern)
        elif pieces[-1]:
            suffixes.append(pieces[-1])
        elif pieces[0]:
            prefixes.append(pieces[0])
        elif any(pieces):
            inner.append(max(pieces, key=len))
        else:  # "*": everything
            return lambda _name: True
    ends, starts = tuple(suffixes), tuple(prefixes)
    within = re.compile("|".join(map(re.escape, inner))).search if inner else None
    rest = fnmatch_regex(tuple(other)).match if other else None

    def screen(name: str) -> bool:
        return (name.endswith(ends) or name.startswith(starts)
                or (within is not None and within(name) is not None)
                or (rest is not None and rest(name) is not None))

    return screen


@dataclass(frozen=True)
class NameRule:
    """``kind`` for items whose base name matches one of ``patterns`` (fnmatch; any case: ``nocase``).

    ``types`` restricts the item types; ``table_types`` (for tables) the ``table.info`` Type;
    ``requires``/``unless`` name a boolean :class:`~qa2core.planning.styles.Style` switch that must be
    on/off; ``skip`` makes matching items stay out with that reason.
    """

    kind: str
    patterns: tuple[str, ...] = ("*",)
    types: tuple[ItemType, ...] = (ItemType.FILE,)
    table_types: tuple[str, ...] = ()
    requires: str = ""
    unless: str = ""
    skip: str = ""
    nocase: bool = False

    def matches(self, item: SourceItem, style: Style) -> bool:
        return self.applies(item.type, item.table_type, style) and \
            self._regex.match(item.name) is not None

    def applies(self, type_: ItemType, table_type: str, style: Style) -> bool:
        """Everything but the name: the item type, table type and style switches."""
        if type_ not in self.types:
            return False
        if self.table_types and table_type not in self.table_types:
            return False
        if self.requires and not getattr(style, self.requires):
            return False
        return not (self.unless and getattr(style, self.unless))

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(fnmatch_regex(self.patterns).pattern, re.I if self.nocase else 0)


class _Table:
    """A rule table under one style, as one regex per (item type, table type): its alternatives
    are the rules that apply to such items, in order, so the first alternative that matches a
    name is the first matching rule. One match per item instead of one per rule."""

    def __init__(self, rules: Sequence[NameRule], style: Style) -> None:
        self.rules, self.style = rules, style  # held: the cache below is keyed by their ids
        self.by_type: dict[tuple[ItemType, str], tuple[re.Pattern[str] | None, dict[int, NameRule]]] = {}

    def classify(self, item: SourceItem) -> Collected:
        key = (item.type, item.table_type)
        try:
            regex, owner = self.by_type[key]
        except KeyError:
            regex, owner = self.by_type[key] = self._build(*key)
        if regex is not None and (m := regex.match(item.name)) is not None:
            rule = owner[m.lastindex or 0]
            return Collected(item, rule.kind, rule.skip)
        return Collected(item, UNCLASSIFIED)

    def _build(self, type_: ItemType, table_type: str) -> tuple[re.Pattern[str] | None, dict[int, NameRule]]:
        parts: list[str] = []
        owner: dict[int, NameRule] = {}
        group = 0
        for rule in self.rules:
            if not rule.applies(type_, table_type, self.style):
                continue
            body = "|".join(f"(?:{fnmatch.translate(p)})" for p in rule.patterns)
            inner = re.compile(body).groups  # captures fnmatch itself may add
            for g in range(group + 1, group + inner + 2):
                owner[g] = rule
            group += inner + 1
            parts.append(f"((?i:{body}))" if rule.nocase else f"({body})")
        return (re.compile("|".join(parts)) if parts else None), owner


_TABLES: dict[tuple[int, int], _Table] = {}


def classify(item: SourceItem, rules: Sequence[NameRule], style: Style) -> Collected:
    """The first rule of ``rules`` that matches ``item`` under ``style``, as a ``Collected``
    (``UNCLASSIFIED`` when none does). Keep ``rules`` in a module constant: the table is
    compiled once per (rules, style)."""
    table = _TABLES.get((id(rules), id(style)))
    if table is None or table.rules is not rules or table.style is not style:
        if len(_TABLES) > 64:  # tables built on the fly: do not hold them all
            _TABLES.clear()
        table = _TABLES[(id(rules), id(style))] = _Table(rules, style)
    return table.classify(item)


def narrowed(view: PackageView, *tops: str) -> PackageView:
    """``view`` with only its files below ``tops`` (``"script/"``, ``"product/"`` …): its
    ``glob`` then scans those, not every QA plot of a 200,000-file package."""
    return replace(view, files=tuple(f for f in view.files if f.startswith(tops)))


def missing_pb_partners(view: PackageView, exempt: re.Pattern[str] | None = None) -> list[Finding]:
    """docs/domain.md §8.4 rule 17: each ``*.pbcor.fits`` in product/ ships with its primary beam
    (``.pb.fits.gz``, ``.pb.tt0.fits`` for mtmfs, ``.flux.fits.gz`` for manual imaging).
    Names matching ``exempt`` (e.g. pipeline calibrator images) need none."""
    products = {n.removeprefix("product/") for n in view.files if n.startswith("product/")}
    beams = {p for p in products if not p.endswith(".pbcor.fits")}  # X.pbcor is not X.pb

    def has_beam(stem: str) -> bool:
        stems = {stem, stem.removesuffix(".image"), re.sub(r"\.tt\d$", "", stem)}
        return any(p.startswith((f"{s}.pb", f"{s}.flux")) for s in stems for p in beams)

    return [Finding(Level.WARN, "product.pb_partner", f"product/{name}",
                    "no primary-beam image (.pb.fits.gz, .pb.tt0.fits or .flux.fits.gz) beside it")
            for name in sorted(products)
            if name.endswith(".pbcor.fits") and not (exempt and exempt.search(name))
            and not has_beam(name.removesuffix(".pbcor.fits"))]


def unscripted_input_ebs(items: Iterable[SourceItem], scripted: Container[str], script: str,
                         rule: str) -> list[Finding]:
    """Every EB of the input (its MS, ASDM or tables among ``items``) has its calibration script
    (``script``, e.g. ``"{eb}.ms.scriptForCalibration.py"``; ``scripted`` holds the EBs that
    have one), or scriptForPI treats it as unused (QA semipass). A problem of the input: call
    it from ``qa2_collect`` (``qa2 verify`` has no input to look at)."""
    seen: dict[str, str] = {}
    file = ItemType.FILE
    for item in items:
        if item.type is not file and (eb := eb_of(item.name)) and item.name.startswith(f"{eb}."):
            seen[eb] = item.relpath
    return [Finding(Level.WARN, rule, relpath,
                    f"EB {eb} is in the reduction but has no {script.format(eb=eb)}: scriptForPI "
                    "will treat it as unused (QA semipass)")
            for eb, relpath in sorted(seen.items()) if eb not in scripted]


def manual_style(style: Style) -> list[Finding]:
    """For ``qa2_collect`` of manual reductions: a pipeline style (``*-pipe``) is refused."""
    fit = ", ".join(s.name for s in STYLES.values() if not s.pipeline)
    return [Finding(Level.ERROR, "style.manual", f"--style {style.name}",
                    f"style {style.name} is for pipeline products; this is a manual reduction: "
                    f"use a manual style ({fit}) or no style")] if style.pipeline else []


# Rows every plugin can append: droppings of a CASA session that are never deliverables.
COMMON_SKIPS: tuple[NameRule, ...] = (
    NameRule("casa_task_parameters", ("*.last", "*.saved"), skip="CASA task parameter file"),
    NameRule("python_cache", ("*.pyc", "*~", "*.swp"), skip="editor or interpreter leftover"),
    NameRule("raw_asdm", types=(ItemType.ASDM,),
             skip="raw ASDM: delivered in its own tarball, not in the package"),
    NameRule("flagversions", types=(ItemType.FLAGVERSIONS,),
             skip="flag versions of a measurement set (the scripts recreate them)"),
    NameRule("master_piscript", ("scriptForPI.py", "*.scriptForPI.py"),
             skip="the PI script is taken from --piscript"),
    NameRule("readme_header", ("README.header*",), skip="README header: pass it with --readme"),
)
