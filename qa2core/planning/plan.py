"""From plugin placements to a plan: every destination, its action, sources and byte size.

The plan is pure data; nothing is written here. The same plan drives --dry-run, validation,
the README listing, the ticket and the executor.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from qa2core.errors import Qa2Error
from qa2core.hooks.model import (
    MEMBER_DIRS,
    Action,
    ItemType,
    Mode,
    PackageView,
    Placement,
    Purpose,
    SourceItem,
)
from qa2core.planning import naming
from qa2core.planning.styles import Style
from qa2core.writing.fileops import open_source

ALLOWED_TOP = frozenset({"calibration", "calibrated", "log", "product", "qa", "script"})
PISCRIPT_DEST = naming.PISCRIPT  # the older styles' name; naming.piscript_dest for all
_READABLE = (Action.COPY, Action.GZIP, Action.REWRITE)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    dest: str  # member-relative
    action: Action
    external: tuple[str, ...]  # absolute paths of sources from outside ORIGPATH (--piscript)
    items: tuple[SourceItem, ...]  # the scanned items behind sources (empty for --piscript)
    bytes: int
    rule: str
    renames: tuple[tuple[str, str], ...] = ()  # Action.REWRITE: names replaced in the file
    root: str = ""  # ORIGPATH, where ``items`` are

    @property
    def sources(self) -> tuple[str, ...]:
        """Absolute source paths: ``root``/each item, made when asked (kept, they would cost
        ~40 MB over 200,000 files), or ``external``."""
        if self.items:
            return tuple(f"{self.root}/{i.relpath}" for i in self.items)
        return self.external

    @property
    def whole_dir(self) -> bool:
        """A directory shipped as it is (a calibrated MS in calibrated/)."""
        return self.action is Action.COPY and len(self.items) == 1 and self.items[0].is_dir

    @property
    def linkable(self) -> bool:
        """Hard mode may link it: plain files and ASDM contents never change once written;
        casacore rewrites tables in place, so a link would tie the package to the source."""
        if self.action is not Action.COPY or len(self.sources) != 1:
            return False
        return not self.items or self.items[0].type in (ItemType.FILE, ItemType.ASDM)

    @property
    def listing_name(self) -> str:
        return self.dest + "/" if self.whole_dir else self.dest


@dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]
    readme: str = naming.README  # the member README's name (member.<MOUS>.README.txt since Cycle 5)

    def source_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @functools.cached_property
    def listing(self) -> tuple[str, ...]:
        """Member-relative names for the README: files, whole dirs, and the five subdirs."""
        names = [f.listing_name for f in self.files]
        present = {n.split("/", 1)[0] for n in names}
        names += [f"{d}/" for d in MEMBER_DIRS if d not in present]
        return (self.readme, *names)

    def view(self, style: Style, plugin: str, mode: Mode, purpose: Purpose) -> PackageView:
        """The planned member directory. Content is the sources', streamed, in every mode: the
        rehearsal (fake, ticket) runs every rule the real run runs, on the same bytes. A file
        the run gzips opens as its source's bytes, not yet compressed (sniff the gzip magic, as
        qa2core.data.images.unzipped does); made files (tgz, exports) have no content yet."""
        by_dest = {f.dest: f for f in self.files}

        def open_planned(dest: str) -> BinaryIO | None:
            entry = by_dest.get(dest)
            if entry is None or entry.action not in _READABLE or entry.whole_dir:
                return None
            if not entry.sources:
                return open(os.devnull, "rb")
            stream = os.fdopen(open_source(entry.sources[0]), "rb")
            if entry.action is not Action.REWRITE:
                return stream
            with stream:  # the bytes the run will write
                return io.BytesIO(naming.rewrite(stream.read(naming.REWRITE_MAX_BYTES), entry.renames))

        return PackageView(self.listing, style, plugin, mode, purpose, open_planned)


def fold_links(placements: list[Placement], items: Sequence[SourceItem],
                ) -> tuple[list[Placement], list[tuple[str, str]]]:
    """An internal link is its target: where a link and the file it points to (or two links to
    one file) land on one destination, that file is packaged once, from its own place, and the
    link is listed as left out; never a [plan.clash]. A link with a destination of its own
    ships as the file it stands for, under its own name."""
    target = {i.relpath: i.link_of for i in items if i.link_of}
    if not target:
        return placements, []
    by_dest: dict[str, list[Placement]] = {}
    for p in placements:
        by_dest.setdefault(p.dest, []).append(p)
    kept, folded = [], []
    for p in placements:
        group = by_dest[p.dest]
        same = {tuple(target.get(s, s) for s in q.sources) for q in group}
        if len(group) == 1 or len(same) != 1 or any(q.external for q in group):
            kept.append(p)  # one source, or truly different files: make_plan judges
            continue
        first = min(group, key=lambda q: (any(s in target for s in q.sources), q.sources))
        if p is first:
            kept.append(p)
        else:
            folded += [(s, f"a link to {target[s]}: the same file, packaged once as {p.dest}")
                       for s in p.sources if s in target]
    return kept, folded


def _bad_dest(dest: str) -> bool:
    parts = dest.split("/")  # string work: pathlib costs seconds over 200,000 files
    return (dest.startswith("/") or ".." in parts or "" in parts[:-1] or len(parts) < 2
            or parts[0] not in ALLOWED_TOP)


def make_plan(root: Path, items: Sequence[SourceItem], placements: Sequence[Placement],
              readme: str = naming.README) -> Plan:
    """Check and size every placement; every broken rule is listed, not only the first."""
    by_rel = {item.relpath: item for item in items}
    files: list[PlannedFile] = []
    seen: dict[str, Placement] = {}
    problems: list[str] = []
    base = str(root)
    for p in placements:
        if _bad_dest(p.dest):
            problems.append(f"plugin rule {p.rule or '?'} placed a file at {p.dest!r}: destinations "
                            f"must be inside one of {', '.join(sorted(ALLOWED_TOP))}")
            continue
        if p.dest in seen:
            first = seen[p.dest]
            problems.append(f"{p.dest}: two sources for one destination: "
                            f"{', '.join(first.sources) or first.rule} and "
                            f"{', '.join(p.sources) or p.rule} [plan.clash]")
            continue
        seen[p.dest] = p
        if p.external is not None:
            size = p.external.stat().st_size
            files.append(PlannedFile(p.dest, p.action, (str(p.external),), (), size, p.rule))
            continue
        try:
            srcs = tuple([by_rel[s] for s in p.sources])
        except KeyError:
            missing = [s for s in p.sources if s not in by_rel]
            problems.append(f"plugin rule {p.rule!r} placed unknown source(s): {', '.join(missing)}")
            continue
        if p.action in (Action.GZIP, Action.REWRITE) and (len(srcs) != 1 or srcs[0].is_dir):
            problems.append(f"plugin rule {p.rule!r}: {p.action} takes one file, got {p.sources}")
            continue
        if p.action is Action.REWRITE and srcs[0].size > naming.REWRITE_MAX_BYTES:
            problems.append(f"plugin rule {p.rule!r}: {p.sources[0]}: too large to rewrite "
                            f"({srcs[0].size} bytes)")
            continue
        size = srcs[0].size if len(srcs) == 1 else sum(s.size for s in srcs)  # no new int
        files.append(PlannedFile(p.dest, p.action, (), srcs, size, p.rule, p.renames, base))
    if problems:
        raise Qa2Error(problems[0], lines=tuple(problems))
    return Plan(tuple(sorted(files, key=attrgetter("dest"))), readme)
