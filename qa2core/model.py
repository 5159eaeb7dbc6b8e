"""What the core and the plugins hand each other: frozen dataclasses, no behaviour.

Paths inside these objects are POSIX strings relative to a root (the reduction directory for
sources, the member directory for destinations), so results are hashable, comparable and print
the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from qa2core.styles import Style

# Claim scores: a small documented scale, as astropy's format registry does with priorities.
FALLBACK = 10  # "I could package this if nobody else wants it"
GENERIC = 50  # typical files of my kind, nothing decisive
SPECIFIC = 80  # decisive evidence (e.g. per-EB calibration scripts)
OVERRIDE = 90  # evidence that must beat SPECIFIC claims of others (TP scripts, as the original)


class ItemType(StrEnum):
    """What a source item is on disk (decided by the core's scanner, never by name alone)."""

    FILE = "file"
    TABLE = "table"  # a casacore table: a directory holding table.dat
    ASDM = "asdm"  # a raw ASDM directory (holds ASDM.xml)
    FLAGVERSIONS = "flagversions"  # <ms>.flagversions: flag tables of a measurement set


@dataclass(frozen=True)
class SourceItem:
    """One thing found under ORIGPATH. CASA tables, ASDMs and flag-version dirs are one item."""

    relpath: str
    type: ItemType
    size: int  # bytes; for directories the sum of their files
    table_type: str = ""  # first line of table.info, e.g. "Measurement Set", "Image", "Calibration"
    table_subtype: str = ""
    mtime_ns: int = 0  # for directories the newest file's; with size, the change fingerprint

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]

    @property
    def is_dir(self) -> bool:
        return self.type is not ItemType.FILE


@dataclass(frozen=True)
class Delivery:
    """The input of one packaging run, as the plugins see it: names, types and sizes only."""

    root: Path
    items: tuple[SourceItem, ...]
    style: Style
    options: PackageOptions

    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.items)


@dataclass(frozen=True)
class PackageOptions:
    """The user's options that plugins may want to read (modes are the core's business)."""

    mode: str = "fake"
    append: str = "none"
    piscript: Path | None = None
    readme: Path | None = None
    purpose: str = "package"  # or "stage": qa2 stage (QA_Pipeline_Stager), nothing compressed


@dataclass(frozen=True)
class Claim:
    """A plugin's answer to ``qa2_detect``: how sure it is, and why."""

    score: int
    reason: str
    evidence: tuple[str, ...] = ()


MEMBER_DIRS: tuple[str, ...] = ("calibration", "log", "product", "qa", "script")


@dataclass(frozen=True)
class Collected:
    """One source item with what the plugin decided it is.

    ``kind`` is the plugin's own word (``"calibration_script"``, ``"pb_image"`` …). Set ``skip``
    to a reason to leave the item out on purpose (a raw ASDM, a measurement set under noms);
    set ``kind=UNCLASSIFIED`` when the plugin does not know the item: the core reports it.
    """

    item: SourceItem
    kind: str
    skip: str = ""


UNCLASSIFIED = "unclassified"


class Action(StrEnum):
    """How the core materialises a placement."""

    COPY = "copy"  # as it is (hard mode links immutable files instead)
    GZIP = "gzip"  # one file, gzip-compressed; dest ends in .gz
    TGZ = "tgz"  # one or more sources tarred (each under its base name) and gzipped
    EMPTY = "empty"  # an empty file that must exist (e.g. a dummy scriptForImaging.py)


@dataclass(frozen=True)
class Placement:
    """One destination of the package, relative to the member directory.

    ``sources`` are relative to ``Delivery.root``; ``external`` is an absolute source path given
    by the user (the PI script), used instead of ``sources``.
    """

    dest: str
    action: Action = Action.COPY
    sources: tuple[str, ...] = ()
    rule: str = ""
    external: Path | None = None


class Level(StrEnum):
    ERROR = "ERROR"
    WARN = "WARN"
    INFO = "INFO"


@dataclass(frozen=True)
class Finding:
    """A validation result. ``rule`` is a stable id (e.g. ``script.piscript``)."""

    level: Level
    rule: str
    path: str
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.path}: {self.message} [{self.rule}]"


@dataclass(frozen=True)
class PackageView:
    """A member directory as planned or as found on disk, for ``qa2_validate``.

    ``files`` are member-relative POSIX paths of every file (directories end in ``/`` when
    they are packaged whole, e.g. a calibrated MS). ``read`` returns the bytes of a file, or
    ``None`` where content is not available (fake packages, directories). ``delivery`` is the
    input being packaged, so rules about the input itself can be checked (``None`` in verify).
    """

    files: tuple[str, ...]
    style: Style
    plugin: str
    mode: str = "copy"
    purpose: str = "package"  # "stage" for a staged tree (qa2 stage), not yet a delivery
    read: Callable[[str], bytes | None] = field(default=lambda _path: None, compare=False)
    delivery: Delivery | None = field(default=None, compare=False)  # the input; None in verify

    def glob(self, pattern: str) -> tuple[str, ...]:
        from fnmatch import fnmatchcase

        return tuple(f for f in self.files if fnmatchcase(f, pattern))
