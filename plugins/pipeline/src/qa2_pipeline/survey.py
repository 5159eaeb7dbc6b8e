"""What a pipeline input is: a pipeline run or a staged tree, and where each item sits in it.

Pure functions of the scanned :class:`~qa2core.Delivery`: names, types and sizes only. Nothing
here opens a file; :func:`identity` is given the PPR that :mod:`qa2_pipeline.context` read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from qa2_pipeline import rules
from qa2core import UID, Delivery, Finding, Level, Purpose, SourceItem

if TYPE_CHECKING:
    from qa2_pipeline.ppr import Ppr

RUN, STAGED = "run", "staged"


@dataclass(frozen=True)
class Place:
    """Where an item sits: ``area`` (working, products, rawdata, weblog_dir; calibration … script,
    calibrated, raw, member_readme, member; outside) and its path below that area."""

    area: str
    inner: str


@dataclass(frozen=True)
class Survey:
    shape: str  # RUN, STAGED, or "" when this is no pipeline input
    places: dict[str, Place] = field(default_factory=dict)
    problems: tuple[Finding, ...] = ()
    bases: tuple[str, ...] = ()  # run: dirs holding working/ products/; staged: member dirs

    def place(self, item: SourceItem) -> Place:
        return self.places.get(item.relpath, Place("outside", item.relpath))


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _error(rule: str, path: str, message: str) -> Finding:
    return Finding(Level.ERROR, rule, path, message)


# ---------------------------------------------------------------------------- staged trees


def staged_members(items: Sequence[SourceItem]) -> list[str]:
    """Member dirs (relpath prefixes ending in ``/`` or ``""``) whose script/ holds a PPR or
    pipeline script; ``calibrated/`` (scriptForPI's work area) never counts."""
    members = set()
    for item in items:
        parts = item.relpath.split("/")
        if len(parts) < 2 or parts[-2] != "script" or not _matches(item.name, rules.SCRIPT_MARKERS):
            continue
        prefix = parts[:-2]
        if rules.ANALYSIS_DIR in prefix or set(prefix) & set(rules.RUN_AREAS):
            continue
        members.add("".join(p + "/" for p in prefix))
    return sorted(members)


def _staged_place(relpath: str, members: Sequence[str]) -> Place:
    member = max((m for m in members if relpath.startswith(m)), key=len, default=None)
    if member is None:
        area = "staged_manifest" if relpath == rules.CHECKSUM_MANIFEST else "outside"
        return Place(area, relpath)
    rest = relpath[len(member):]
    top, _, inner = rest.partition("/")
    if not inner:
        return Place("member_readme" if rest == "README" else "member", rest)
    if top in (*rules.STAGED_DIRS, rules.ANALYSIS_DIR, rules.RAW_DIR):
        return Place(top, inner)
    return Place("member", rest)


def _survey_staged(delivery: Delivery, members: list[str]) -> Survey:
    places = {i.relpath: _staged_place(i.relpath, members) for i in delivery.items}
    problems = []
    if len(members) > 1:
        shown = ", ".join(m or "./" for m in members)
        problems.append(_error("staged.members", members[1], f"{len(members)} staged member "
                               f"directories ({shown}): package one member at a time "
                               "(pass its directory as ORIGPATH)"))
    if delivery.options.purpose is Purpose.STAGE:
        problems.append(_error("stage.staged_input", members[0] or ".",
                               "this is already a staged tree (script/ holds a PPR): package it "
                               "with qa2 package --style cycleN-pipe…, or stage the pipeline run"))
    return Survey(STAGED, places, tuple(problems), tuple(members))


# ---------------------------------------------------------------------------- pipeline runs


def _chain(delivery: Delivery, prefix: Sequence[str]) -> list[str]:
    return [*delivery.root.parts, *prefix]


def _run_place(delivery: Delivery, item: SourceItem) -> tuple[Place, str] | None:
    """(place, dir holding the area) for an item below working/, products/ or rawdata/ of an
    OUS chain; ``None`` otherwise."""
    parts = item.relpath.split("/")
    for i, part in enumerate(parts[:-1]):
        if part not in rules.RUN_AREAS:
            continue
        if not any(_matches(seg, rules.OUS_DIRS) for seg in _chain(delivery, parts[:i])):
            return None
        inner = "/".join(parts[i + 1:])
        area = part
        if part == "working" and len(parts) - i > 2 and fnmatchcase(parts[i + 1], rules.WEBLOG_DIR):
            area = "weblog_dir"
        return Place(area, inner), "/".join(parts[:i])
    return None


def _tree_key(base: str) -> str:
    """The MOUS-level dir of a tree: an SB-level ``…/MOUS_x/SBS_y`` belongs to ``…/MOUS_x``."""
    head, _, last = base.rpartition("/")
    return head if fnmatchcase(last, rules.SB_DIR) else base


def _ous_children(delivery: Delivery) -> tuple[str, list[str]]:
    """The deepest OUS directory in the input and the names found directly below it."""
    dirs = {"/".join(parts[:i + 1]) for item in delivery.items
            for parts in [item.relpath.split("/")[:-1]]
            for i, part in enumerate(parts) if _matches(part, rules.OUS_DIRS)}
    deepest = max(dirs, key=len, default="")
    prefix = deepest + "/" if deepest else ""
    below = set()
    for item in delivery.items:
        if item.relpath.startswith(prefix):
            head, sep, _ = item.relpath[len(prefix):].partition("/")
            below.add(head + sep)
    return deepest or delivery.root.name, sorted(below)


def _has_ous_chain(delivery: Delivery) -> bool:
    names = set(delivery.root.parts)
    for item in delivery.items:
        names.update(item.relpath.split("/")[:-1])
    return any(_matches(n, rules.OUS_DIRS) for n in names)


def _tree_problems(delivery: Delivery, working: set[str], products: set[str]) -> list[Finding]:
    def shown(bases: Iterable[str], area: str) -> str:
        return ", ".join(f"{b}/{area}/" if b else f"{area}/" for b in sorted(bases))

    if not working and not products:
        where, found = _ous_children(delivery)
        return [_error("run.trees", where, "no pipeline tree: no working/ or products/ below "
                       f"{where} (found: {', '.join(found) or 'nothing'}); hand-renamed "
                       "directories are not staged")]
    keys = {_tree_key(b) for b in working | products}
    if len(working) > 1 or len(products) > 1 or len(keys) > 1:
        trees = "; ".join(filter(None, (shown(working, "working"), shown(products, "products"))))
        return [_error("run.trees", sorted(keys)[0] or ".", f"several pipeline trees ({trees}): "
                       "qa2 stage takes one MOUS; pass its MOUS_ (or SBS_) directory as "
                       "PIPELINE_ROOT")]
    if not products:
        return [_error("run.products", shown(working, "working"), "no products/ beside it: the "
                       "pipeline exported nothing (did the run reach hif_exportdata?)")]
    if not working:
        return [Finding(Level.WARN, "run.working", shown(products, "products"),
                        "no working/ beside it: flux.csv, antennapos.csv, flag templates and "
                        "CASA logs come from working/ and will be missing")]
    return []


def _survey_run(delivery: Delivery) -> Survey:
    places: dict[str, Place] = {}
    working: set[str] = set()
    products: set[str] = set()
    for item in delivery.items:
        found = _run_place(delivery, item)
        if found is None:
            continue
        place, base = found
        places[item.relpath] = place
        if place.area in ("working", "weblog_dir"):
            working.add(base)
        elif place.area == "products":
            products.add(base)
    if not (working or products) and not _has_ous_chain(delivery):
        return Survey("")  # no pipeline input: said cheaply, before any problem is looked for
    problems = _tree_problems(delivery, working, products)
    return Survey(RUN, places, tuple(problems), tuple(sorted(working | products)))


def survey(delivery: Delivery) -> Survey:
    """Staged trees first (their calibrated/ may hold a restore's working/), then runs."""
    members = staged_members(delivery.items)
    if members:
        return _survey_staged(delivery, members)
    return _survey_run(delivery)


# ---------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """The MOUS and recipe of the input, and what the user should know about them."""

    mous: str
    recipe: str
    single_dish: bool
    notes: tuple[Finding, ...] = ()


def ppr_candidates(delivery: Delivery, s: Survey) -> list[SourceItem]:
    """PPR items in preference order (products/ PPR_*.xml first, as rules.ROLE_PREFERENCE)."""
    if s.shape == STAGED:
        return [i for i in delivery.items if s.place(i).area == "script"
                and _matches(i.name, ("*PPR*.xml", "*pprequest.xml"))]
    ordered = []
    for area, pattern in rules.ROLE_PREFERENCE["ppr"]:
        ordered += [i for i in delivery.items
                    if s.place(i).area == area and "/" not in s.place(i).inner
                    and fnmatchcase(i.name, pattern) and i not in ordered]
    return ordered


def _chain_uid(delivery: Delivery, s: Survey, pattern: str, prefix: str) -> str:
    for base in s.bases:
        for seg in reversed(_chain(delivery, base.split("/") if base else [])):
            if fnmatchcase(seg, pattern):
                return seg.removeprefix(prefix)
    return ""


def real_names(delivery: Delivery, s: Survey) -> tuple[str, str, str] | None:
    """(SOUS, GOUS, MOUS) of a staged tree that already has ingestion names
    (``science_goal.<uid>/group.<uid>/member.<uid>``), else ``None``."""
    if s.shape != STAGED or len(s.bases) != 1:
        return None
    parts = _chain(delivery, [p for p in s.bases[0].split("/") if p])[-3:]
    heads = ("science_goal.", "group.", "member.")
    if len(parts) != 3 or not all(p.startswith(h) for p, h in zip(parts, heads, strict=True)):
        return None
    uids = tuple(p.removeprefix(h) for p, h in zip(parts, heads, strict=True))
    return uids if all(UID.fullmatch(u) for u in uids) else None  # type: ignore[return-value]


def dir_mous(delivery: Delivery, s: Survey) -> str:
    """The MOUS of a run's ``MOUS_<uid>`` directory ("" when it has none)."""
    return _chain_uid(delivery, s, rules.MOUS_DIR, "MOUS_") if s.shape == RUN else ""


# Products the pipeline names after the MOUS (``<M>.weblog.tgz``, ``<M>.<r>.casa_commands.log``).
_MOUS_NAMED = ("*.weblog.tgz", "*.weblog.tar.gz", "*.caltables.tgz", "*.caltables.tar.gz",
               "*.casa_commands.log", "*.casa_pipescript.py", "*.casa_piperestorescript.py",
               "*.pprequest.xml", "*.pipeline_manifest.xml")
_OUT_OF_TREE = ("outside", "calibrated", "raw", "rawdata", "weblog_dir")


def names_mous(delivery: Delivery, s: Survey) -> str:
    """The MOUS as the names tell it, without opening a file: a run's ``MOUS_`` directory, a
    staged tree's ``member.<uid>`` directory, else the ``<M>.`` prefix the pipeline gives its
    products (the most common one). "" when only the PPR knows."""
    mous = dir_mous(delivery, s) or (real_names(delivery, s) or ("", "", ""))[2]
    if mous:
        return mous
    prefixes = Counter(found.group() for i in delivery.items
                       if s.place(i).area not in _OUT_OF_TREE and _matches(i.name, _MOUS_NAMED)
                       for found in [UID.match(i.name)]
                       if found and i.name[found.end():].startswith("."))
    return prefixes.most_common(1)[0][0] if prefixes else ""


def single_dish_name(delivery: Delivery, s: Survey) -> str:
    """The name that shows single-dish (TP, hsd) pipeline data, the strongest evidence of
    ``rules.SINGLE_DISH_NAMES`` first; "" when no name says so. Names only: no file is opened."""
    best: tuple[int, str] | None = None
    for item in delivery.items:
        name = item.name
        if not ("hsd" in name or "jyperk" in name or ".sd.fits" in name):
            continue  # a cheap test first: most names are none of these
        if s.place(item).area in _OUT_OF_TREE:
            continue
        rank = next((n for n, p in enumerate(rules.SINGLE_DISH_NAMES) if fnmatchcase(name, p)), None)
        if rank is not None and (best is None or (rank, name) < best):
            best = (rank, name)
    return best[1] if best else ""


def identity(delivery: Delivery, s: Survey, ppr_item: SourceItem | None, request: Ppr | None,
             sd_name: str | None = None) -> Identity:
    """MOUS from the PPR's OUSStatusRef, else from the MOUS_ directory (docs/domain.md §5.1).

    ``request`` is the parsed ``ppr_item`` (``None`` when there is none, or it is unreadable:
    validation says why); ``sd_name`` is :func:`single_dish_name`, when already worked out."""
    if sd_name is None:
        sd_name = single_dish_name(delivery, s)
    recipe = request.recipe if request else ""
    single_dish = bool(sd_name) or bool(request and request.single_dish)
    from_dir = dir_mous(delivery, s)
    notes = _ous_hint(delivery, s, request.ous if request and request.ous else from_dir)
    if ppr_item is not None and request is not None and request.ous:
        if from_dir and from_dir != request.ous:
            notes.append(Finding(Level.WARN, "run.mous", ppr_item.relpath,
                                 f"PPR names OUS {request.ous} but the run directory is "
                                 f"MOUS_{from_dir}; the PPR wins"))
        return Identity(request.ous, recipe, single_dish, tuple(notes))
    if ppr_item is not None and request is not None and from_dir:
        notes.append(Finding(Level.INFO, "run.mous", ppr_item.relpath,
                             f"PPR has no OUSStatusRef: MOUS {from_dir} taken from the "
                             f"directory name MOUS_{from_dir}"))
    return Identity(from_dir, recipe, single_dish, tuple(notes))


def run_names(delivery: Delivery, s: Survey, mous: str) -> tuple[str, str, str] | None:
    """(SOUS, GOUS, MOUS) of a pipeline run: its SOUS_/GOUS_ directories and the MOUS."""
    sous = _chain_uid(delivery, s, "SOUS_uid___*", "SOUS_") if s.shape == RUN else ""
    gous = _chain_uid(delivery, s, "GOUS_uid___*", "GOUS_") if s.shape == RUN else ""
    return (sous, gous, mous) if sous and gous and mous else None


def uid_url(uid: str) -> str:
    """``uid___A001_X87c_X67`` -> ``uid://A001/X87c/X67`` (docs/domain.md §1, the reverse)."""
    return "uid://" + uid.removeprefix("uid___").replace("_", "/")


def _ous_hint(delivery: Delivery, s: Survey, mous: str) -> list[Finding]:
    """Staging keeps the placeholders: give the ``--ous-uids`` value for later, as a line the
    reducer can paste (the staged tree no longer tells its SOUS and GOUS)."""
    names = run_names(delivery, s, mous)
    if names is None or delivery.options.purpose is not Purpose.STAGE:
        return []
    value = ",".join(map(uid_url, names))
    return [Finding(Level.INFO, "run.ous_uids", s.bases[0] or ".", "the staged tree has the "
                    "placeholder OUS names (as JAO's stager wrote them); for ingestion-ready "
                    f"names package it with --ous-uids {value}")]
