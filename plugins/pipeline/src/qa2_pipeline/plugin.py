"""Hook implementations for pipeline runs (qa2 stage) and staged pipeline trees (qa2 package).

Each hook is a few lines over rules.py (names), survey.py (what the input is), context.py (the
input as ``qa2_detect`` saw it, the PPR read once) and checks.py (what a pipeline package needs).
``qa2_detect`` surveys the input from names only and returns the survey as ``Claim.context``;
the other hooks take it back as ``context`` and never survey again.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

from qa2_pipeline import checks, rules
from qa2_pipeline.context import PipelineInput
from qa2_pipeline.survey import RUN, STAGED, Place, Survey, real_names, run_names, survey
from qa2core import (
    GENERIC,
    SPECIFIC,
    UNCLASSIFIED,
    Action,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    Purpose,
    hookimpl,
)
from qa2core.planning import layouts, naming
from qa2core.planning.compression import compression_for
from qa2core.planning.ous import OusUids
from qa2core.planning.rules import classify
from qa2core.writing import readme

# This plugin stages (qa2 stage, QA_Pipeline_Stager): the core stages an input only when the
# plugin that claims it says so, and otherwise refuses naming that plugin (a manual reduction).
QA2_STAGES = True


def _context(delivery: Delivery, context: Any) -> PipelineInput:
    """This plugin's context. The core hands back what ``qa2_detect`` returned; the input is
    surveyed afresh only when a caller gives none (hooks called by hand)."""
    if isinstance(context, PipelineInput) and context.delivery.root == delivery.root:
        return context
    return PipelineInput.of(delivery)


# ---------------------------------------------------------------------------- detect

PROJECT = re.compile(r"\d{4}\.\d\.\d{5}\.[A-Z]+")  # 2017.1.00271.S, at the start of a name



def era(delivery: Delivery) -> tuple[str, str]:
    """(era, suggested style) from the names (rules.ERAS), refined by the project code's cycle."""
    names = {i.name for i in delivery.items}
    found = next(((words, style) for patterns, words, style in rules.ERAS
                  if any(map(re.compile("|".join(map(fnmatch.translate, patterns))).match, names))),
                 None)
    if found is None:
        return "", ""
    words, style = found
    code = next((m.group(0) for i in (delivery.root.name, *names) if (m := PROJECT.match(i))), "")
    cycle = readme.cycle_of(code)
    for since, later, later_words in rules.LATEST_BY_CYCLE:
        if style.startswith("cycle5") and cycle is not None and cycle >= since:
            return later_words, later
    return words, style


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    """Names, types and sizes only: no file is opened here (the PPR waits for collect)."""
    s = survey(delivery)
    if not s.shape:
        return None
    ctx = PipelineInput(delivery, s)
    when, style = era(delivery)
    when = f"; era {when}: style {style}" if style else ""
    if s.shape == STAGED:
        return Claim(SPECIFIC, f"staged pipeline tree of {ctx.mous_words()} (PPR or pipeline "
                     f"script in script/){ctx.single_dish_words()}{when}",
                     tuple(m or "./" for m in s.bases), context=ctx, style=style)
    if not s.bases:  # an OUS chain without working/ or products/: claimed to say so, but
        # only GENERIC, so that a manual reduction kept below a MOUS_ directory is not taken
        return Claim(GENERIC, "pipeline run directory (SOUS_/GOUS_/MOUS_) without working/ "
                     "or products/", context=ctx)
    trees = ", ".join(b or delivery.root.name for b in s.bases)
    return Claim(SPECIFIC, f"pipeline run of {ctx.mous_words()} ({trees})"
                 f"{ctx.single_dish_words()}{when}", s.bases[:5], context=ctx, style=style)


# ---------------------------------------------------------------------------- collect


def _skip(c: Collected, reason: str) -> Collected:
    return Collected(c.item, c.kind, skip=reason)


def _classify_run(c: Collected, place: Place) -> Collected:
    if place.area in ("rawdata", "weblog_dir"):
        return _skip(c, rules.AREA_SKIPS[place.area])
    if c.skip or place.area == "products":
        return c
    if place.area == "working":
        if c.kind == "image":
            return _skip(c, rules.AREA_SKIPS["working_image"])
        return c if c.kind in rules.WORKING_TAKES else _skip(c, rules.AREA_SKIPS["working"])
    return _outside(c)


def _outside(c: Collected) -> Collected:
    """Beside the pipeline tree: never packaged; reported as unclassified unless a rule skips it."""
    return c if c.skip else Collected(c.item, UNCLASSIFIED)


def _classify_staged(c: Collected, place: Place) -> Collected:
    if place.area in ("raw", "member_readme", "staged_manifest"):
        return _skip(c, rules.AREA_SKIPS[place.area])
    if place.area == rules.ANALYSIS_DIR:
        ok = c.kind in rules.ANALYSIS_TAKES and not c.skip
        return c if ok else _skip(c, rules.AREA_SKIPS[rules.ANALYSIS_DIR])
    if place.area not in rules.STAGED_DIRS:
        return _outside(c)
    if c.kind == UNCLASSIFIED:
        return Collected(c.item, "staged_file")  # put there by the stager or the analyst: kept
    return c


def _style_filter(c: Collected, delivery: Delivery) -> Collected:
    """Packaging (not staging) drops what the style does not take; staging keeps it all."""
    style = delivery.style
    if c.skip or delivery.options.purpose is Purpose.STAGE:
        return c
    if c.kind == "antennapos" and not style.accepts_antennapos:
        return _skip(c, f"antennapos.csv is packaged from style cycle3-pipe1 on, not in style "
                        f"{style.name or chr(34) * 2}")
    if c.kind == "manifest" and style.cycle < rules.MANIFEST_FROM_CYCLE:
        return _skip(c, f"pipeline manifest: delivered in script/ from Cycle "
                        f"{rules.MANIFEST_FROM_CYCLE} on (style {style.name or chr(34) * 2})")
    return c


def _prefer_auxproducts(collected: list[Collected], s: Survey) -> list[Collected]:
    """A run with ``<M>.auxproducts.tgz`` (2017-05 on) ships it, and no loose flux.csv,
    antennapos.csv, cont.dat or jyperk.csv beside it: the tgz is what the pipeline exported, and
    scriptForPI >= 1.23 untars it inside calibration/ (docs/domain.md §8.3 rule 13)."""
    if s.shape != RUN:
        return collected
    aux = next((c.item.name for c in collected if c.kind == "auxproducts" and not c.skip
                and s.place(c.item).area == "products"), None)
    if aux is None:
        return collected
    reason = (f"{aux} ships instead: from 2017-05 on the pipeline exports flux.csv, "
              "antennapos.csv, cont.dat and jyperk.csv in it, and scriptForPI >= 1.23 untars it "
              "inside calibration/, where a second copy would stop its pipeline re-run or be "
              "overwritten (docs/domain.md §8.3 rule 13)")
    return [_skip(c, reason) if c.kind in rules.AUX_ROLES and not c.skip
            and s.place(c.item).area in ("working", "products") else c for c in collected]


def _choose_roles(collected: list[Collected], s: Survey) -> list[Collected]:
    """One file per role in a run: working/ copies and bare/prefixed twins become duplicates."""
    if s.shape != RUN:
        return collected
    by_role: dict[str, list[Collected]] = defaultdict(list)
    for c in collected:
        if not c.skip and c.kind in rules.ROLE_PREFERENCE:
            by_role[c.kind].append(c)
    losers: dict[str, str] = {}
    for kind, candidates in by_role.items():
        for area, pattern in rules.ROLE_PREFERENCE[kind]:
            kept = [c for c in candidates if s.place(c.item).area == area
                    and fnmatchcase(c.item.name, pattern)]
            if kept:
                losers.update({c.item.relpath: kept[0].item.relpath for c in candidates
                               if c not in kept})
                break
    return [_skip(c, f"duplicate of {losers[c.item.relpath]}") if c.item.relpath in losers
            else c for c in collected]


def _decide_images(collected: list[Collected], delivery: Delivery) -> list[Collected]:
    """CASA image directories ship only as compressed PB/mask images without a FITS twin."""
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    out = []
    for c in collected:
        if c.kind == "image" and not c.skip:
            c = layouts.decide_image(c, fits, delivery)
            if not c.skip and delivery.options.purpose is Purpose.STAGE:  # never compressed
                c = _skip(c, "CASA image: the FITS export is the product")
        out.append(c)
    return out


def _rank(c: Collected, s: Survey) -> tuple[int, int, str]:
    empty_script = int(c.kind == "imaging_script" and c.item.size == 0)
    return empty_script, rules.AREA_RANK.get(s.place(c.item).area, 2), c.item.relpath


def _dedupe(collected: list[Collected], delivery: Delivery, s: Survey) -> list[Collected]:
    """Same destination from two areas (products/ and working/, script/ and calibrated/): the
    better-ranked one ships. Within one area a clash stays for the core to report."""
    by_dest: dict[str, list[Collected]] = defaultdict(list)
    for c in collected:
        if not c.skip and c.kind != UNCLASSIFIED:
            by_dest[_dest(c, delivery, s)].append(c)
    losers: dict[str, str] = {}
    for clash in by_dest.values():
        if len({s.place(c.item).area for c in clash}) < 2:
            continue
        best = min(clash, key=lambda c: _rank(c, s))
        losers.update({c.item.relpath: best.item.relpath for c in clash if c is not best})
    return [_skip(c, f"duplicate of {losers[c.item.relpath]} (same name in the package)")
            if c.item.relpath in losers else c for c in collected]


@hookimpl
def qa2_collect(delivery: Delivery, context: Any) -> Collection:
    """Every item's verdict, and the problems of the input itself (several trees, staging a
    staged tree, the MOUS of the PPR against the directory's …). The PPR is read here, once."""
    ctx = _context(delivery, context)
    s = ctx.survey
    findings = ctx.input_findings()
    refused = [f.rule for f in findings if f.level is Level.ERROR]
    if refused:  # nothing to lay out: the findings say why, the core refuses
        reason = f"not packaged: the input is refused ([{'], ['.join(refused)}])"
        return Collection(tuple(Collected(i, UNCLASSIFIED, skip=reason) for i in delivery.items),
                          findings)
    area_rule = _classify_staged if s.shape == STAGED else _classify_run
    collected = [_style_filter(area_rule(classify(i, rules.RULES, delivery.style), s.place(i)),
                               delivery) for i in delivery.items]
    collected = _decide_images(_choose_roles(_prefer_auxproducts(collected, s), s), delivery)
    return Collection(tuple(_dedupe(collected, delivery, s)), findings)


# ---------------------------------------------------------------------------- layout


def _final_name(name: str, kind: str, delivery: Delivery) -> str:
    """``<oussid>.`` and ``<oussid>.<recipe>.`` stripped from the scripts and the PPR."""
    canonical = rules.CANONICAL.get(kind)
    if canonical and delivery.style.strip_oussid_prefix and name.endswith("." + canonical):
        return canonical
    return name


def _dest(c: Collected, delivery: Delivery, s: Survey) -> str:
    """Member-relative destination before compression."""
    if c.kind == "staged_file":
        place = s.place(c.item)
        return f"{place.area}/{place.inner}"
    if c.kind == "image":
        return f"product/{c.item.name}"
    return f"{rules.DEST_DIR[c.kind]}/{_final_name(c.item.name, c.kind, delivery)}"


def _placement(c: Collected, delivery: Delivery, s: Survey) -> Placement:
    dest, rel = _dest(c, delivery, s), c.item.relpath
    packaging = delivery.options.purpose is not Purpose.STAGE and delivery.style.compress_pb_mask
    if c.kind in ("fits_image", "image") and packaging:
        squeeze = compression_for(c.item, set())
        if squeeze is not None:
            action, name = squeeze
            return Placement(f"product/{name}", action, (rel,), f"pipeline.{c.kind}_compressed")
    return Placement(dest, Action.COPY, (rel,), f"pipeline.{c.kind}")


def _dummy_imaging_script(delivery: Delivery, collected: Sequence[Collected],
                          single_dish: bool) -> list[Placement]:
    """Pipeline-imaged interferometric data get an empty scriptForImaging.py (JAO pkgPipe)."""
    if delivery.options.purpose is Purpose.STAGE or single_dish:
        return []
    if any(c.kind == "imaging_script" for c in collected):
        return []
    science = [c for c in collected if c.kind == "fits_image"
               and any(fnmatchcase(c.item.name, p) for p in rules.PIPELINE_SCIENCE_IMAGES)]
    if not science:
        return []
    return [Placement("script/scriptForImaging.py", Action.EMPTY,
                      rule="pipeline.dummy_imaging_script")]


def _member_named(placements: list[Placement], collected: Sequence[Collected], mous: str,
                  token: str | None) -> list[Placement]:
    """Cycle >= 5 styles: ``<MOUS>.x`` becomes ``member.<MOUS>.x`` (``member_ouss_id.x`` with
    placeholders); the pipeline manifest is rewritten to name the renamed files, since
    scriptForPI and the restore open them by the names it gives (docs/layout-rules.md)."""
    if token is None:
        return placements
    renamed = [replace(p, dest=naming.rename_dest(p.dest, mous, token)) for p in placements]
    names = tuple(sorted({(a.dest.rpartition("/")[2], b.dest.rpartition("/")[2])
                          for a, b in zip(placements, renamed, strict=True) if a.dest != b.dest}))
    return [replace(p, action=Action.REWRITE, renames=names, rule="pipeline.manifest_renamed")
            if c.kind == "manifest" and p.action is Action.COPY and names else p
            for c, p in zip(collected, renamed, strict=True)]


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected], context: Any) -> list[Placement]:
    ctx = _context(delivery, context)
    placements = _member_named([_placement(c, delivery, ctx.survey) for c in collected], collected,
                               ctx.identity.mous, delivery.options.member_token)
    for c, placed in zip(collected, placements, strict=True):
        if ctx.ppr_item is not None and c.item.relpath == ctx.ppr_item.relpath:
            ctx.ppr_dest = placed.dest  # validate checks that file from the PPR read in collect
    return placements + _dummy_imaging_script(delivery, collected, ctx.identity.single_dish)


# ---------------------------------------------------------------------------- OUS names


@hookimpl
def qa2_ous_uids(delivery: Delivery, context: Any) -> OusUids | None:
    """``--ous-uids auto`` (the core asks only then): the three UIDs when the input's names give
    them, a run's SOUS_/GOUS_ directories with its MOUS (PPR, else MOUS_ directory), or a staged
    tree that already has ``science_goal.<uid>/group.<uid>/member.<uid>``. A staged tree with
    placeholders names no SOUS or GOUS: ``None`` (the core refuses and says why). Staging or
    packaging without the option keeps the placeholders (docs/domain.md §2.2, §5.3)."""
    ctx = _context(delivery, context)
    names = real_names(delivery, ctx.survey) or run_names(delivery, ctx.survey, ctx.identity.mous)
    return OusUids(*names) if names else None


# ---------------------------------------------------------------------------- validate


@hookimpl
def qa2_validate(view: PackageView, context: Any) -> list[Finding]:
    """The member directory only (``view.files``, ``view.open``), planned or on disk; the
    input's own problems were reported by ``qa2_collect``."""
    return checks.check(view, context if isinstance(context, PipelineInput) else None)
