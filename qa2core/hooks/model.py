"""What the core and the plugins hand each other: small enums and frozen dataclasses.

Paths inside these objects are POSIX strings relative to a root (the reduction directory for
sources, the member directory for destinations), so results are hashable, comparable and print
the same on every machine. Dataclasses use ``slots``: a run over 200,000 files holds one
``SourceItem``, ``Collected`` and ``Placement`` per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from qa2core.planning.styles import Style

# Claim scores: a small documented scale, as astropy's format registry does with priorities.
FALLBACK = 10  # "I could package this if nobody else wants it"
GENERIC = 50  # typical files of my kind, nothing decisive
SPECIFIC = 80  # decisive evidence (e.g. per-EB calibration scripts)
OVERRIDE = 90  # evidence that must beat SPECIFIC claims of others (TP scripts, as the original)

# A sanitized ALMA UID (``uid://A001/X87c/X69`` -> ``uid___A001_X87c_X69``): the one pattern.
UID = re.compile(r"uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+")


class _Word(str, Enum):
    """A closed vocabulary whose members are their own strings (``StrEnum`` is 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)


class Mode(_Word):
    """How a run materialises the package (contract: fake | ticket | copy | hard)."""

    FAKE = "fake"  # names only: empty files, real README
    TICKET = "ticket"  # fake tree plus the real ticket zip
    COPY = "copy"  # real copies
    HARD = "hard"  # hard links where the source is immutable, copies otherwise

    @property
    def real(self) -> bool:
        """The package holds the data (and so a manifest)."""
        return self in (Mode.COPY, Mode.HARD)


class Purpose(_Word):
    """Why a member directory is looked at."""

    PACKAGE = "package"  # qa2 package (QA_Packager): a delivery
    STAGE = "stage"  # qa2 stage (QA_Pipeline_Stager): a pipeline run, staged, not compressed
    VERIFY = "verify"  # qa2 verify: a package on disk, no input at hand


class ItemType(_Word):
    """What a source item is on disk (decided by the core's scanner, never by name alone)."""

    FILE = "file"
    TABLE = "table"  # a casacore table: a directory holding table.dat
    ASDM = "asdm"  # a raw ASDM directory (holds ASDM.xml)
    FLAGVERSIONS = "flagversions"  # <ms>.flagversions: flag tables of a measurement set


class Action(_Word):
    """How the core materialises a placement."""

    COPY = "copy"  # as it is (hard mode links immutable files instead)
    GZIP = "gzip"  # one file, gzip-compressed; dest ends in .gz
    TGZ = "tgz"  # one or more sources tarred (each under its base name) and gzipped
    EMPTY = "empty"  # an empty file that must exist (e.g. a dummy scriptForImaging.py)
    EXPORT = "export"  # a CASA image written as FITS (qa2core.writing.export); a .fits.gz dest: then gzipped
    REWRITE = "rewrite"  # one small text file, with the file names in ``Placement.renames`` replaced


class Level(_Word):
    ERROR = "ERROR"
    WARN = "WARN"
    INFO = "INFO"


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One thing found under ORIGPATH. CASA tables, ASDMs and flag-version dirs are one item."""

    relpath: str
    type: ItemType
    size: int  # bytes; for directories the sum of their files
    table_type: str = ""  # first line of table.info, e.g. "Measurement Set", "Image", "Calibration"
    table_subtype: str = ""
    mtime_ns: int = 0  # for directories the newest file's; with size, the change fingerprint
    # A symbolic link to another file that ORIGPATH holds: that file's relpath ("" otherwise).
    # Where both would land on one destination, the file is packaged once (engine._fold_links).
    link_of: str = ""
    # A link leaving ORIGPATH to an ASDM (the shared raw area of an ARC): its target. Never
    # read; left out as raw data, and refused only if a plan would deliver it.
    outside: str = ""

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]

    @property
    def is_dir(self) -> bool:
        return self.type is not ItemType.FILE


@dataclass(frozen=True)
class PackageOptions:
    """The user's options that plugins may want to read."""

    mode: Mode = Mode.FAKE
    append: str = "none"
    piscript: Path | None = None
    readme: Path | None = None
    purpose: Purpose = Purpose.PACKAGE
    # Styles that name member files after the MOUS (Style.member_prefix): ``member.<MOUS>`` with
    # real OUS UIDs, ``member_ouss_id`` with placeholders; None for the older styles. The core
    # names the README and the PI script with it; a plugin renames its ``<MOUS>.`` files
    # (qa2core.planning.naming.member_file).
    member_token: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The input of one run, as the plugins see it: names, types and sizes only."""

    root: Path
    items: tuple[SourceItem, ...]
    style: Style
    options: PackageOptions = field(default_factory=PackageOptions)

    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.items)


@dataclass(frozen=True)
class Claim:
    """A plugin's answer to ``qa2_detect``: how sure it is, and why.

    ``context`` is the plugin's own view of the input, built once in ``qa2_detect``; the core
    hands it back unchanged to the winner's ``collect``, ``layout``, ``validate`` and
    ``ous_uids`` (their ``context`` argument), so nothing is worked out twice.
    """

    score: int
    reason: str
    evidence: tuple[str, ...] = ()
    context: Any = field(default=None, compare=False, repr=False)
    # The style the input's era suggests (``cycle5-pipe``), shown by ``qa2 detect``; "" when
    # the plugin cannot tell. A suggestion only: --style decides.
    style: str = ""


MEMBER_DIRS: tuple[str, ...] = ("calibration", "log", "product", "qa", "script")
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class Collected:
    """One source item with what the plugin decided it is.

    ``kind`` is the plugin's own word (``"calibration_script"``, ``"pb_image"`` …). Set ``skip``
    to a reason to leave the item out on purpose (a raw ASDM, a measurement set under noms);
    set ``kind=UNCLASSIFIED`` when the plugin does not know the item: the core reports it.
    """

    item: SourceItem
    kind: str
    skip: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """A validation result. ``rule`` is a stable id (e.g. ``script.piscript``)."""

    level: Level
    rule: str
    path: str
    message: str

    def text(self) -> str:
        """``path: message [rule]``: how a problem reads after ``qa2: <level>:``."""
        return f"{self.path}: {self.message} [{self.rule}]"

    def line(self) -> str:
        return f"{self.level}: {self.text()}"


@dataclass(frozen=True)
class Collection:
    """What ``qa2_collect`` returns: every item's verdict, and the problems of the input itself
    (a broken PPR, an EB without its script). Those findings join the plan's validation; an
    ERROR among them refuses the run."""

    items: tuple[Collected, ...]
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
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
    # REWRITE: (old, new) file names; each quoted value ``"old"`` in the file becomes ``"new"``
    # (a pipeline manifest naming files the package renames: qa2core.planning.naming)
    renames: tuple[tuple[str, str], ...] = ()


def _no_content(_path: str) -> BinaryIO | None:
    return None


@dataclass(frozen=True)
class PackageView:
    """A member directory, as planned or as found on disk, for ``qa2_validate``.

    ``files`` are member-relative POSIX paths of every file (a directory shipped whole, e.g. a
    calibrated MS, ends in ``/``). ``open(path)`` returns a binary stream of a file's content, or
    ``None`` where content is not at hand (fake packages, directories, products a rehearsal does
    not read). Read what you need and stream archives; never read whole products into memory.
    """

    files: tuple[str, ...]
    style: Style
    plugin: str
    mode: Mode = Mode.COPY
    purpose: Purpose = Purpose.PACKAGE
    open: Callable[[str], BinaryIO | None] = field(default=_no_content, compare=False)
    # True in qa2 verify (a package on disk, checked after the fact); False while planning a
    # package or stage run. ``purpose`` says what the member is for in both.
    verifying: bool = False

    def glob(self, pattern: str) -> tuple[str, ...]:
        from fnmatch import fnmatchcase

        return tuple(f for f in self.files if fnmatchcase(f, pattern))
