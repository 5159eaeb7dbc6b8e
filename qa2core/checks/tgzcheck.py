"""Is a gzip tar safe for a PI to unpack? Streamed, headers only, in bounded memory.

scriptForPI and the PI untar every archive a package carries (weblog, auxproducts, caltables,
flagversions, the ``.tgz`` of a CASA table or image). :func:`scan` reads one such archive as a
stream and says which members must never be unpacked:

* an absolute name, or a name with a ``..`` component;
* a link that can lead out of the archive: a symbolic link whose target is absolute or holds a
  ``..`` component (through another link in the same archive even a target that stays inside
  on paper can lead out: a target without ``..`` provably cannot), a hard link to an absolute
  name or one with ``..``. Links that stay inside are fine;
* a character or block device, or a FIFO;
* an oversized header: a pax extended or global header, or a GNU long-name / long-link header,
  declaring more than :data:`HEADER_LIMIT` bytes. Python's ``tarfile`` reads such a header's
  whole payload into memory (``_proc_pax``, ``_proc_gnulong``: ``fileobj.read(self._block(
  self.size))``), so a 1.7 MB ``.tgz`` whose header claims 400 MB costs 400 MB and more. The
  size is checked *before* the payload is read; the scan stops there (what follows cannot be
  read without it) and reports it as an unsafe member.

The bound, :data:`HEADER_LIMIT` = 1 MiB: a path is at most 4,096 bytes on Linux (PATH_MAX), a
pax header holds a path, a link path, times, ids, names and the odd extended attribute (each
value at most 64 KiB on Linux), so 1 MiB is hundreds of times what any real archive needs and
still small. The headers of one member together (a chain of pax / GNU headers, an old GNU sparse
map, a GNU 1.0 sparse map at the start of the data) may read at most 4 x :data:`HEADER_LIMIT`
and chain at most :data:`CHAIN_LIMIT` deep; pax global headers at most :data:`HEADER_LIMIT` in
the whole archive (they stay in memory for every later member). Peak memory stays a few times
the bound, whatever the archive's size and whatever its headers claim.

A damaged header after the first member is an error here: ``tarfile`` silently takes it for the
end of the archive, while GNU tar skips it and unpacks what follows, unchecked. So is data after
the end-of-archive marker (``tar -i`` unpacks it) and a broken gzip stream (read to its end, so
its CRC is checked).
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

try:
    from isal.igzip import IGzipFile as _GzipFile  # several times faster than zlib on big weblogs
    from isal.isal_zlib import IsalError

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (IsalError,)
except ImportError:  # pragma: no cover - isal comes with qa2core
    from gzip import GzipFile as _GzipFile

    _INFLATE_ERRORS = ()

HEADER_LIMIT = 1 << 20  # bytes a pax / GNU long-name / long-link header may declare
MEMBER_HEADER_BUDGET = 4 * HEADER_LIMIT  # bytes read for the headers of one member, all told
CHAIN_LIMIT = 8  # extension headers before one member (real archives: at most 3 or 4)
_MIB = f"{HEADER_LIMIT >> 20} MiB"
KEPT = 10  # unsafe members kept by name; the rest are counted
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")
# ValueError: a malformed GNU sparse map (int() of its text)
READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError, *_INFLATE_ERRORS)

_EXTENDED = {
    tarfile.XHDTYPE: "pax extended header",
    tarfile.XGLTYPE: "pax global header",
    tarfile.SOLARIS_XHDTYPE: "Solaris extended header",
    tarfile.GNUTYPE_LONGNAME: "GNU long-name header",
    tarfile.GNUTYPE_LONGLINK: "GNU long-link header",
}


class Unsafe(NamedTuple):
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


@dataclass(frozen=True)
class TgzReport:
    """What :func:`scan` found: ``members`` read (headers), the first :data:`KEPT` ``unsafe``
    members of ``unsafe_count``, and ``error`` (why the archive is unreadable, or ``""``)."""

    members: int
    unsafe: tuple[Unsafe, ...] = ()
    unsafe_count: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.unsafe_count and not self.error


def is_archive(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def _short(name: str, limit: int = 200) -> str:
    """A name for a message: a pax path may be a megabyte long."""
    return name if len(name) <= limit else f"{name[:limit]}... ({len(name):,} characters)"


def why_unsafe(info: tarfile.TarInfo) -> str:
    """Why a PI must never unpack this member, or ``""``."""
    name = info.name
    if name.startswith("/"):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a path climbing out with '..'"
    if info.issym():
        target = info.linkname
        if target.startswith("/"):
            return f"a symbolic link to {_short(target)}, outside the archive"
        if ".." in target.split("/"):
            inside = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if inside == ".." or inside.startswith("../"):
                return f"a symbolic link to {_short(target)}, outside the archive"
            return (f"a symbolic link to {_short(target)}: '..' in a link target can lead out of the "
                    "archive through another link")
    if info.islnk() and (info.linkname.startswith("/") or ".." in info.linkname.split("/")):
        return f"a hard link to {_short(info.linkname)}, outside the archive"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a FIFO"
    return ""


class _Refused(Exception):
    """A header this module will not read (not a ``tarfile.HeaderError``: tarfile must not
    mistake it for the end of the archive)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.unsafe = Unsafe(name, reason)


class _VisitFailed(Exception):
    """The caller's ``visit`` raised: its exception, not an unreadable archive."""


class _Budget:
    """``tarfile.fileobj`` while one member's headers are read: counts what they read."""

    def __init__(self, stream, name: str) -> None:
        self.stream, self.name, self.left, self.depth = stream, name, MEMBER_HEADER_BUDGET, 0

    def read(self, size: int) -> bytes:
        self.left -= size
        if self.left < 0:
            raise _Refused(self.name, f"headers of one member larger than "
                           f"{MEMBER_HEADER_BUDGET >> 20} MiB (sparse map or header chain)")
        return self.stream.read(size)

    def __getattr__(self, attr: str):
        return getattr(self.stream, attr)


class _BoundedInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized headers before reading them (Python 3.10-3.13: every
    header goes through ``fromtarfile`` -> ``_proc_member``, chains recurse into ``fromtarfile``)."""

    @classmethod
    def fromtarfile(cls, tarfile_):
        stream = tarfile_.fileobj
        if isinstance(stream, _Budget):  # inside a chain: pax/GNU header before this one
            stream.depth += 1
            if stream.depth > CHAIN_LIMIT:
                raise _Refused(stream.name, f"more than {CHAIN_LIMIT} extension headers in a row")
            return super().fromtarfile(tarfile_)
        tarfile_.fileobj = _Budget(stream, f"header at byte {tarfile_.offset}")
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            if tarfile_.offset:  # tarfile ends the archive here silently; GNU tar reads on
                tarfile_.qa2_damaged = f"damaged header at byte {tarfile_.offset} ({exc})"
            raise
        finally:
            tarfile_.fileobj = stream

    def _proc_member(self, tarfile_):
        kind = _EXTENDED.get(self.type)
        if kind is not None:
            where = f"{_short(self.name) or kind} at byte {self.offset}"
            if self.size > HEADER_LIMIT:
                raise _Refused(where, f"a {kind} declaring {self.size:,} bytes, over the "
                               f"{_MIB} bound: reading it would take that "
                               "much memory")
            if self.type == tarfile.XGLTYPE:  # kept for the rest of the archive: bound the sum
                total = getattr(tarfile_, "qa2_global", 0) + self.size
                tarfile_.qa2_global = total
                if total > HEADER_LIMIT:
                    raise _Refused(where, f"pax global headers of {total:,} bytes in all, over "
                                   f"the {_MIB} bound")
        return super()._proc_member(tarfile_)


def _trailing(tar: tarfile.TarFile) -> str:
    """After the end-of-archive block: only zeros (record padding) to the gzip stream's end."""
    while chunk := tar.fileobj.read(1 << 16):
        if chunk.count(0) != len(chunk):
            return "data after the end-of-archive marker (tar -i would unpack it unchecked)"
    return ""


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def scan(fh: BinaryIO, visit: Callable[[tarfile.TarInfo, str], None] | None = None) -> TgzReport:
    """Every member header of the gzip tar ``fh``, member data skipped. ``visit(info, why)`` is
    called for each member (``why``: :func:`why_unsafe`, ``""`` when safe). Never raises on a
    bad archive: the report's ``error`` says why it could not be read."""
    count, kept, unsafe = 0, [], 0
    try:
        with _GzipFile(fileobj=fh) as gz, \
                tarfile.open(fileobj=gz, mode="r|", tarinfo=_BoundedInfo) as tar:
            while (info := tar.next()) is not None:
                del tar.members[:]  # Python < 3.13 keeps every header of a stream otherwise
                count += 1
                why = why_unsafe(info)
                if why:
                    unsafe += 1
                    if len(kept) < KEPT:
                        kept.append(Unsafe(_short(info.name), why))
                if visit is not None:
                    try:
                        visit(info, why)
                    except Exception as exc:
                        raise _VisitFailed from exc
            error = getattr(tar, "qa2_damaged", "") or _trailing(tar)
    except _VisitFailed as exc:
        raise exc.__cause__ from None  # type: ignore[misc]
    except _Refused as exc:
        kept, unsafe, error = [*kept[:KEPT - 1], exc.unsafe], unsafe + 1, ""
    except READ_ERRORS as exc:
        error = _reason(exc)
    return TgzReport(count, tuple(kept), unsafe, error)


def scan_path(open_: Callable[[str], BinaryIO | None], rel: str,
              visit: Callable[[tarfile.TarInfo, str], None] | None = None) -> TgzReport | None:
    """:func:`scan` of ``open_(rel)`` (a ``PackageView.open``); ``None`` when its content is
    not at hand."""
    fh = open_(rel)
    if fh is None:
        return None
    with fh:
        return scan(fh, visit)
