"""From plugin placements to a plan: every destination, its action, sources and byte size.

The plan is pure data; nothing is written here. The same plan drives --dry-run, validation,
the README listing, the ticket and the executor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qa2core.errors import Qa2Error
from qa2core.model import MEMBER_DIRS, Action, Delivery, ItemType, PackageView, Placement, SourceItem
from qa2core.styles import Style

ALLOWED_TOP = {"calibration", "calibrated", "log", "product", "qa", "script"}
PISCRIPT_DEST = "script/scriptForPI.py"
PROJECT_CODE = re.compile(r"^\d{4}\.\d\.\d{5}\.[A-Z]+$")


@dataclass(frozen=True)
class PlannedFile:
    dest: str  # member-relative
    action: Action
    sources: tuple[Path, ...]
    items: tuple[SourceItem, ...]
    bytes: int
    rule: str

    @property
    def whole_dir(self) -> bool:
        """A directory shipped as it is (a calibrated MS in calibrated/)."""
        return self.action is Action.COPY and len(self.items) == 1 and self.items[0].is_dir

    @property
    def linkable(self) -> bool:
        """Hard mode may link it: plain files and ASDM contents never change once written."""
        if self.action is not Action.COPY or len(self.sources) != 1:
            return False
        return not self.items or self.items[0].type in (ItemType.FILE, ItemType.ASDM)

    @property
    def listing_name(self) -> str:
        return self.dest + "/" if self.whole_dir else self.dest


@dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]

    def source_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def listing(self) -> list[str]:
        """Member-relative names for the README: files, whole dirs, and the five subdirs."""
        names = [f.listing_name for f in self.files]
        present = {n.split("/", 1)[0] for n in names}
        names += [f"{d}/" for d in MEMBER_DIRS
                  if d not in present]
        return ["README", *names]

    def view(self, style: Style, plugin: str, mode: str, purpose: str = "package",
             delivery: Delivery | None = None) -> PackageView:
        by_dest = {f.dest: f for f in self.files}

        def read(dest: str) -> bytes | None:
            entry = by_dest.get(dest)
            if entry is None or entry.action is not Action.COPY or entry.whole_dir:
                return None
            if not entry.sources:
                return b""
            return entry.sources[0].read_bytes()

        return PackageView(tuple(self.listing()), style, plugin, mode, purpose, read, delivery)


def check_dest(dest: str, rule: str) -> None:
    path = PurePosixPath(dest)
    if (path.is_absolute() or ".." in path.parts or len(path.parts) < 2
            or path.parts[0] not in ALLOWED_TOP):
        raise Qa2Error(f"plugin rule {rule or '?'} placed a file at {dest!r}: destinations must "
                       f"be inside one of {', '.join(sorted(ALLOWED_TOP))}")


def make_plan(root: Path, items: Sequence[SourceItem], placements: Sequence[Placement]) -> Plan:
    by_rel = {item.relpath: item for item in items}
    files: list[PlannedFile] = []
    seen: dict[str, Placement] = {}
    for p in placements:
        check_dest(p.dest, p.rule)
        if p.dest in seen:
            first = seen[p.dest]
            raise Qa2Error(f"two sources for {p.dest}: {', '.join(first.sources) or first.rule} "
                           f"and {', '.join(p.sources) or p.rule}; rename one of them")
        seen[p.dest] = p
        if p.external is not None:
            size = p.external.stat().st_size
            files.append(PlannedFile(p.dest, p.action, (p.external,), (), size, p.rule))
            continue
        missing = [s for s in p.sources if s not in by_rel]
        if missing:
            raise Qa2Error(f"plugin rule {p.rule!r} placed unknown source(s): {', '.join(missing)}")
        srcs = tuple(by_rel[s] for s in p.sources)
        if p.action is Action.GZIP and (len(srcs) != 1 or srcs[0].is_dir):
            raise Qa2Error(f"plugin rule {p.rule!r}: gzip takes one file, got {p.sources}")
        files.append(PlannedFile(
            p.dest, p.action, tuple(root / s.relpath for s in srcs), srcs,
            sum(s.size for s in srcs), p.rule,
        ))
    return Plan(tuple(sorted(files, key=lambda f: f.dest)))
