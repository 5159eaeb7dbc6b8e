"""Layout building blocks shared by plugins of manual reductions (interferometric, TP).

The kinds below are a shared vocabulary; a plugin maps its own kinds to member directories with
``dest_dir`` and lets these functions handle the ones that need more than a directory:

* ``caltable`` / ``fluxscale``: bundled per EB into ``calibration/<EB>.calibration.tgz``;
* ``calibrated_ms``: ``calibrated/<name>`` as it is (cycle0 styles);
* ``image``: a product CASA image without FITS twin exported to ``product/<name>.fits``
  (qa2core.writing.export: ``.image.pbcor``, ``.pb``, ``.flux`` …); a mask ``product/<name>.tgz``;
* ``qa_report`` (any file below a QA folder of ``FOLDERS``): ``qa/``, a named QA folder kept;
* ``calibration_plot`` (any file below a ``*.plots`` folder): ``calibration/<EB>.calibration.plots/``;
* ``fits_image``: ``product/``, PB/mask FITS gzipped.

What goes to ``qa/`` or ``log/`` and the calibration plots never clash: when several would land
on one destination, each goes below it under its source directory (``log/Calibration_X1/…``).

:func:`find_names` is for ``qa2_detect``: one pass over the names, whatever a plugin looks for.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from qa2core.hooks.model import Action, Collected, Delivery, ItemType, Placement, SourceItem
from qa2core.planning import naming
from qa2core.planning.compression import compression_for
from qa2core.planning.rules import NameRule, classify, eb_of, fnmatch_regex, fnmatch_screen
from qa2core.writing import export as exporting


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


# Folders that decide what every file below them is, whatever its name (any letter case): the
# first row that matches a folder on a file's path decides, at the outermost such folder.
# (kind, folder names, the folder's own name kept in the destination). docs/layout-rules.md.
Folder = tuple[str, tuple[str, ...], bool]
FOLDERS: tuple[Folder, ...] = (
    ("calibration_plot", ("*.plots",), True),  # <EB>.ms.tsys.plots/, <EB>.calibration.plots/
    ("qa_report", ("qa", "qa2"), False),  # QA containers: their files go straight to qa/
    ("qa_report", ("*qa2*",), True),  # <EB>.qa2/, <EB>.ms.split.cal.qa2/, *_qa2_*/
)


class _Folders:
    """``relpath`` -> ``(kind, top suffix, source dir, kept dirs)`` by the folders on its path, or
    ``None``; worked out once per parent directory, as thousands of plots share one."""

    def __init__(self, folders: Sequence[Folder]) -> None:
        self.rows = [(kind, re.compile(fnmatch_regex(names).pattern, re.I).match, keep)
                     for kind, names, keep in folders]
        self.cuts: dict[str, tuple[str, str, str, str] | None] = {}

    def __call__(self, relpath: str) -> tuple[str, str, str, str] | None:
        parent = relpath.rpartition("/")[0]
        if parent not in self.cuts:
            self.cuts[parent] = next(self._cuts(parent.split("/")), None)
        return self.cuts[parent]

    def _cuts(self, parts: list[str]) -> Iterable[tuple[str, str, str, str]]:
        for kind, match, keep in self.rows:
            for i, part in enumerate(parts):
                if match(part):
                    eb = eb_of(part) if kind == "calibration_plot" else None
                    inside = not keep or part == f"{eb}.calibration.plots"
                    kept = "".join(f"{p}/" for p in parts[i + inside:])
                    yield kind, f"/{eb}.calibration.plots" if eb else "", "/".join(parts[:i]), kept


def collect(delivery: Delivery, rules: Sequence[NameRule],
            folders: Sequence[Folder] = FOLDERS) -> list[Collected]:
    """Classify every item; files below a folder of ``folders`` are of its kind whatever their name."""
    where, style, file = _Folders(folders), delivery.style, ItemType.FILE
    collected = [Collected(item, cut[0]) if item.type is file and (cut := where(item.relpath))
                 else classify(item, rules, style) for item in delivery.items]
    fits = {c.item.name for c in collected if c.kind == "fits_image" and not c.skip}
    images = {c.item.name for c in collected if c.kind == "image" and not c.skip}
    return [decide_image(c, fits, delivery, images, export=True)
            if c.kind == "image" and not c.skip else c for c in collected]


def decide_image(c: Collected, fits_names: set[str], delivery: Delivery,
                 images: set[str] = frozenset(), export: bool = False) -> Collected:
    """CASA image directories ship only as their FITS (``X.image`` exported as ``X.image.fits``,
    exportfits' habit, or ``X.fits``); with ``export`` (manual layouts) a product image without
    one is exported by qa2 (qa2core.writing.export); else only PB/mask images ship, compressed."""
    if exporting.twin(c.item, fits_names):
        return Collected(c.item, c.kind, skip="CASA image: its FITS export is packaged instead")
    wanted = export and exporting.target(c.item, delivery.style)
    if export and exporting.superseded(c.item, fits_names, images):
        return Collected(c.item, c.kind, skip="CASA image: its primary-beam-corrected image is "
                         "the product")
    if wanted and exporting.available():
        return c  # place() plans the export
    if delivery.style.compress_pb_mask and compression_for(c.item, fits_names):
        return c
    hint = f": {exporting.exportfits_call(c.item.name)}" if wanted else ""
    return Collected(c.item, c.kind, skip="CASA image without a FITS export: the FITS export is "
                     f"the product (run exportfits to deliver it{hint})")


def place(delivery: Delivery, collected: Sequence[Collected], dest_dir: Mapping[str, str],
          folders: Sequence[Folder] = FOLDERS) -> list[Placement]:
    placements: list[Placement] = []
    add = placements.append
    where = _Folders(folders)
    per_eb: dict[str, list[str]] = defaultdict(list)
    loose: list[tuple[str, str, str, str, str]] = []  # (dest, its folder, source dir, source, kind)
    compress, copy = delivery.style.compress_pb_mask, Action.COPY
    for c in collected:
        item, kind = c.item, c.kind
        rel = item.relpath
        top = dest_dir.get(kind, "")
        if top in ("qa", "log") or kind == "calibration_plot":  # first: the bulk of a big delivery
            _, more, src, kept = where(rel) or ("", "", rel.rpartition("/")[0], "")
            loose.append((f"{top}{more}/{kept}{item.name}", top + more, src, rel, kind))
            continue
        if kind in ("caltable", "fluxscale"):
            per_eb[eb_of(item.name) or item.name].append(rel)
            continue
        if kind == "calibrated_ms":
            dest, action = f"calibrated/{item.name}", copy
        elif kind == "image":
            fits = exporting.target(item, delivery.style)
            if fits and exporting.available():  # decided in collect (decide_image)
                add(Placement(f"product/{fits}", Action.EXPORT, (rel,), "image_export"))
                continue
            dest, action = f"product/{item.name}.tgz", Action.TGZ
        elif kind == "fits_image":
            squeeze = compression_for(item, set()) if compress else None
            action, name = squeeze or (copy, item.name)
            dest = f"product/{name}"
        else:
            dest, action = f"{top}/{item.name}", copy
        add(Placement(dest, action, (rel,), kind))
    # Per-EB sessions and reports of one name: keep them apart by their source directory.
    counts = Counter(dest for dest, *_ in loose)
    for dest, top, src, rel, kind in loose:
        clash = src and counts[dest] > 1
        add(Placement(f"{top}/{src}{dest[len(top):]}" if clash else dest, copy, (rel,), kind))
    for key, sources in sorted(per_eb.items()):
        name = f"{key}.calibration.tgz" if eb_of(key) == key else f"{key}.tgz"
        add(Placement(f"calibration/{name}", Action.TGZ, tuple(sorted(sources)),
                      "calibration_tables_per_eb"))
    return member_named(placements, delivery.options.member_token)


# The member's QA2 report in the Cycle >= 5 shape: member.<MOUS>.qa2_report.pdf (docs/domain.md
# 2.2); per-EB reports (<EB>.qa2_report.txt) and plots keep their names.
_MEMBER_QA2_REPORT = re.compile(r"^qa/(?:uid___\w+\.)?qa2_report\.(pdf|html)$", re.IGNORECASE)


def member_named(placements: list[Placement], member_token: str | None) -> list[Placement]:
    """Cycle >= 5 styles: ``<MOUS>.x`` becomes ``member.<MOUS>.x`` and the member's QA2 report
    ``qa/member.<MOUS>.qa2_report.pdf`` (qa2core.planning.naming); other names are kept."""
    if member_token is None:
        return placements
    mous = member_token.removeprefix("member.") if member_token.startswith("member.") else None
    out = []
    for p in placements:
        report = _MEMBER_QA2_REPORT.match(p.dest)
        dest = (f"qa/{member_token}.qa2_report.{report.group(1).lower()}" if report else
                naming.rename_dest(p.dest, mous, member_token))
        out.append(replace(p, dest=dest) if dest != p.dest else p)
    return out
