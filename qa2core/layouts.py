"""Layout building blocks shared by plugins of manual reductions (interferometric, TP).

The kinds below are a shared vocabulary; a plugin maps its own kinds to member directories with
``dest_dir`` and lets these functions handle the ones that need more than a directory:

* ``caltable`` / ``fluxscale``: bundled per EB into ``calibration/<EB>.calibration.tgz``;
* ``calibrated_ms``: ``calibrated/<name>`` as it is (cycle0 styles);
* ``image``: a CASA PB/mask image without FITS twin, ``product/<name>.tgz``;
* ``qa_report``: ``qa/<QA directory>/…`` keeping the directory it came from;
* ``fits_image``: ``product/``, PB/mask FITS gzipped;
* ``casa_log``: ``log/``, or ``log/<its directory>/`` when two logs share a name.

:func:`find_names` is for ``qa2_detect``: one pass over the names, whatever a plugin looks for.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from qa2core.compression import compression_for
from qa2core.model import Action, Collected, Delivery, ItemType, Placement, SourceItem
from qa2core.rules import NameRule, classify, eb_of, fnmatch_regex, fnmatch_screen


def find_names(items: Iterable[SourceItem], groups: Mapping[str, tuple[str, ...]],
               paths: Mapping[str, re.Pattern[str]] | None = None) -> dict[str, list[str]]:
    """For ``qa2_detect``: in one pass, the relative paths of the items whose base name matches
    each group's fnmatch patterns (``{"calibration": ("*.ms.scriptForCalibration.py",)}``), and
    of those whose relative path each of ``paths`` searches (e.g. a directory chain), in item
    order; an item may fall in several groups. One cheap test of all name patterns
    (``fnmatch_screen``) screens each name, so the cost is about one string test per item
    however many groups there are. Patterns are compiled once per pattern tuple: keep them in
    module constants."""
    found: dict[str, list[str]] = {key: [] for key in (*groups, *(paths or {}))}
    screen = fnmatch_screen(tuple(p for patterns in groups.values() for p in patterns))
    regexes = [(found[key], fnmatch_regex(tuple(patterns))) for key, patterns in groups.items()]
    searches = [(found[key], regex.search) for key, regex in (paths or {}).items()]
    for item in items:
        relpath = item.relpath
        name = relpath.rpartition("/")[2]
        if screen(name):
            for hits, regex in regexes:
                if regex.match(name):
                    hits.append(relpath)
        for hits, search in searches:
            if search(relpath):
                hits.append(relpath)
    return found


class _QaDirs:
    """``relpath`` -> its part from the first QA directory (``a/X.qa2/p.png`` -> ``X.qa2/p.png``),
    or ``None``; worked out once per parent directory, as thousands of plots share one."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.regex = fnmatch_regex(tuple(patterns))
        self.cuts: dict[str, int | None] = {}
        self.parent, self.cut = "", None  # the last parent: items come directory by directory

    def __call__(self, relpath: str) -> str | None:
        parent = relpath.rpartition("/")[0]
        if parent != self.parent:
            self.parent = parent
            try:
                self.cut = self.cuts[parent]
            except KeyError:
                self.cut = self.cuts[parent] = self._cut(parent)
        return None if self.cut is None else relpath[self.cut:]

    def _cut(self, parent: str) -> int | None:
        start = 0
        for part in parent.split("/"):
            if self.regex.match(part):
                return start
            start += len(part) + 1
        return None


def collect(delivery: Delivery, rules: Sequence[NameRule], qa_dirs: Sequence[str]) -> list[Collected]:
    """Classify every item; files below a QA directory are QA reports whatever their name."""
    collected: list[Collected] = []
    add = collected.append
    in_qa = _QaDirs(qa_dirs)
    style, file = delivery.style, ItemType.FILE
    for item in delivery.items:
        if item.type is file and in_qa(item.relpath) is not None:
            add(Collected(item, "qa_report"))
        else:
            add(classify(item, rules, style))
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    return [decide_image(c, fits, delivery) if c.kind == "image" and not c.skip else c
            for c in collected]


def has_fits_twin(name: str, fits_names: set[str]) -> bool:
    """``X.image`` exported as ``X.image.fits`` (exportfits' habit) or ``X.fits``."""
    return bool({name + ".fits", name.removesuffix(".image") + ".fits"} & fits_names)


def decide_image(c: Collected, fits_names: set[str], delivery: Delivery) -> Collected:
    """CASA image directories ship only as compressed PB/mask images without a FITS twin."""
    if has_fits_twin(c.item.name, fits_names):
        return Collected(c.item, c.kind, skip="CASA image: its FITS export is packaged instead")
    if delivery.style.compress_pb_mask and compression_for(c.item, fits_names):
        return c
    return Collected(c.item, c.kind, skip="CASA image without a FITS export: the FITS export is "
                     "the product (run exportfits to deliver it)")


def place(delivery: Delivery, collected: Sequence[Collected], dest_dir: Mapping[str, str],
          qa_dirs: Sequence[str]) -> list[Placement]:
    placements: list[Placement] = []
    add = placements.append
    in_qa = _QaDirs(qa_dirs)
    per_eb: dict[str, list[str]] = defaultdict(list)
    log_names = Counter(c.item.name for c in collected if c.kind == "casa_log")
    compress, copy = delivery.style.compress_pb_mask, Action.COPY
    for c in collected:
        item, kind = c.item, c.kind
        rel = item.relpath
        if kind == "qa_report":  # first: the bulk of a big delivery
            add(Placement(f"qa/{in_qa(rel) or item.name}", copy, (rel,), kind))
            continue
        if kind in ("caltable", "fluxscale"):
            per_eb[eb_of(item.name) or item.name].append(rel)
            continue
        if kind == "calibrated_ms":
            dest, action = f"calibrated/{item.name}", copy
        elif kind == "image":
            dest, action = f"product/{item.name}.tgz", Action.TGZ
        elif kind == "fits_image":
            squeeze = compression_for(item, set()) if compress else None
            action, name = squeeze or (copy, item.name)
            dest = f"product/{name}"
        elif kind == "casa_log" and log_names[item.name] > 1:
            # Per-EB sessions started in the same second: keep them apart by their directory.
            parent = rel.rsplit("/", 2)[-2] if "/" in rel else "top"
            dest, action = f"log/{parent}/{item.name}", copy
        else:
            dest, action = f"{dest_dir[kind]}/{item.name}", copy
        add(Placement(dest, action, (rel,), kind))
    for key, sources in sorted(per_eb.items()):
        name = f"{key}.calibration.tgz" if eb_of(key) == key else f"{key}.tgz"
        add(Placement(f"calibration/{name}", Action.TGZ, tuple(sorted(sources)),
                      "calibration_tables_per_eb"))
    return placements
