"""A small toolkit for plugins that hold their domain rules as tables.

A plugin lists :class:`NameRule` rows (first match wins) and calls :func:`classify`; rows can
depend on a style switch by name, so styles stay data on both sides.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from qa2core.model import UNCLASSIFIED, Collected, Finding, ItemType, Level, PackageView, SourceItem
from qa2core.styles import Style

EB_UID = re.compile(r"uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+")


def eb_of(name: str) -> str | None:
    """The sanitized EB (or OUS) UID in a name, e.g. ``uid___A002_Xb8e115_X1e3b``."""
    m = EB_UID.search(name)
    return m.group(0) if m else None


@dataclass(frozen=True)
class NameRule:
    """``kind`` for items whose base name matches one of ``patterns`` (fnmatch, case-sensitive).

    ``types`` restricts the item types; ``table_types`` (for tables) the ``table.info`` Type;
    ``requires``/``unless`` name a boolean :class:`~qa2core.styles.Style` switch that must be
    on/off; ``skip`` makes matching items stay out with that reason.
    """

    kind: str
    patterns: tuple[str, ...] = ("*",)
    types: tuple[ItemType, ...] = (ItemType.FILE,)
    table_types: tuple[str, ...] = ()
    requires: str = ""
    unless: str = ""
    skip: str = ""

    def matches(self, item: SourceItem, style: Style) -> bool:
        if item.type not in self.types:
            return False
        if self.table_types and item.table_type not in self.table_types:
            return False
        if self.requires and not getattr(style, self.requires):
            return False
        if self.unless and getattr(style, self.unless):
            return False
        return self._regex.match(item.name) is not None

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        """All patterns as one compiled regex: fnmatch per pattern per item adds up."""
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns))


def classify(item: SourceItem, rules: Sequence[NameRule], style: Style) -> Collected:
    for rule in rules:
        if rule.matches(item, style):
            return Collected(item, rule.kind, rule.skip)
    return Collected(item, UNCLASSIFIED)


def in_dir_matching(relpath: str, patterns: Iterable[str]) -> str | None:
    """The part of ``relpath`` from the first directory whose name matches ``patterns``
    (``a/X.qa2/p.png`` -> ``X.qa2/p.png``), or ``None``."""
    parts = relpath.split("/")
    for i, part in enumerate(parts[:-1]):
        if any(fnmatchcase(part, p) for p in patterns):
            return "/".join(parts[i:])
    return None


def missing_pb_partners(view: PackageView, exempt: re.Pattern[str] | None = None) -> list[Finding]:
    """§8.4 rule 17: each ``*.pbcor.fits`` in product/ ships with its primary beam
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


def unscripted_input_ebs(view: PackageView, scripted: set[str], script: str,
                         rule: str) -> list[Finding]:
    """Every EB of the input (its MS, ASDM or tables) has its calibration script (``script``,
    e.g. ``"{eb}.ms.scriptForCalibration.py"``), or scriptForPI treats it as unused (QA
    semipass). Checked while packaging only: ``qa2 verify`` has no input to look at."""
    if view.delivery is None:
        return []
    seen = {eb: item.relpath for item in view.delivery.items
            if item.is_dir and (eb := eb_of(item.name)) and item.name.startswith(f"{eb}.")}
    return [Finding(Level.WARN, rule, relpath,
                    f"EB {eb} is in the reduction but has no {script.format(eb=eb)}: scriptForPI "
                    "will treat it as unused (QA semipass)")
            for eb, relpath in sorted(seen.items()) if eb not in scripted]


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
