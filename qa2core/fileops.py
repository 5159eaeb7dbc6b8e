"""Byte-moving primitives. Every function that writes also returns the sha256 of what it wrote,
computed from the bytes as they pass, so each byte is read once (docs/casa-and-io.md §3).

Sources are only ever opened for reading, never through a special file: :func:`open_source`
opens with ``O_NONBLOCK`` and refuses anything that is not a regular file, so a FIFO planted in
a table cannot hang a run. Compression writes a new file; it never touches a linked file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

try:  # ISA-L gzip: ~10x stdlib zlib at a 1.5 % larger output (docs/casa-and-io.md §3.4)
    from isal import igzip as _gzip

    GZIP_LEVEL = 2
except ImportError:  # pragma: no cover - isal is a dependency, this keeps a broken env usable
    import gzip as _gzip  # type: ignore[no-redef]

    GZIP_LEVEL = 6

from qa2core.errors import Qa2Error

_FICLONE = 0x40049409 if os.uname().sysname == "Linux" else None  # linux/fs.h
CHUNK = 1 << 20
AHEAD = 64  # files hinted before they are read (see ahead)
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)  # Linux; elsewhere no hints
T = TypeVar("T")
Tick = Callable[[int], None]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A hard link can fail for reasons that only mean "copy instead".
LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}
# casacore's lock files describe the reducer's open sessions; a shipped stale lock only
# produces lock errors for the PI, so they stay out of the package.
VOLATILE = frozenset({"table.lock"})


class SourceChanged(Qa2Error):
    """A source changed between the scan and the copy: the package would be inconsistent."""


def changed(path: str, what: str = "size or modification time differs from the scan") -> SourceChanged:
    return SourceChanged(f"{path}: source changed while packaging ({what}); run again once it "
                         "is final")


def open_source(path: str, follow: bool = True) -> int:
    """A read-only descriptor of the regular file ``path``; never blocks on a FIFO or device.
    ``follow=False`` (verify, tar) refuses a symbolic link instead of following it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise Qa2Error(f"{path}: a symbolic link: refused, never followed") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Qa2Error(f"{path}: not a regular file (FIFO, socket or device): refused, never read")
    return fd


def ahead(items: Sequence[T], path: Callable[[T], str | None]) -> Iterator[T]:
    """``items`` in order; the file of each (``path(item)``, None for none) is hinted to the
    kernel AHEAD items before it is read: cold small files then reach the disk as one queue
    instead of one wait each. A hint asks for the first CHUNK only (POSIX_FADV_WILLNEED; the
    kernel reads on from there as usual), so memory stays bounded; it opens the file as a copy
    would, and a file it cannot open is left for the real read to report."""
    for i, item in enumerate(items):
        for later in (items[:AHEAD] if i == 0 else items[i + AHEAD - 1:i + AHEAD]):
            if _WILLNEED is not None and (target := path(later)):
                try:
                    fd = open_source(target)
                except (OSError, Qa2Error):
                    continue
                os.posix_fadvise(fd, 0, CHUNK, _WILLNEED)
                os.close(fd)
        yield item


def _create(path: str, mode: int = 0o644) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)


class HashingWriter:
    """A write-only file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def hash_fd(fd: int) -> str:
    sha = hashlib.sha256()
    while data := os.read(fd, CHUNK):
        sha.update(data)
    return sha.hexdigest()


def hash_file(path: str | os.PathLike, follow: bool = True) -> str:
    fd = open_source(os.fspath(path), follow)
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


_REFLINK_WORKS: dict[tuple[int, int], bool] = {}  # (source dev, target dev) -> answer


def _reflink(fin: int, st: os.stat_result, dst: str) -> bool:
    """Share the source's extents with a new ``dst`` (btrfs, XFS); False where the file system
    cannot (ext4). Remembered per pair of devices: probing costs a create and an unlink."""
    if _FICLONE is None:
        return False
    key = (st.st_dev, os.stat(os.path.dirname(dst)).st_dev)
    if _REFLINK_WORKS.get(key) is False:
        return False
    fout = _create(dst, stat.S_IMODE(st.st_mode))
    try:
        fcntl.ioctl(fout, _FICLONE, fin)
        ok = True
    except OSError:
        ok = False
    finally:
        os.close(fout)
    _REFLINK_WORKS[key] = ok
    if not ok:
        os.unlink(dst)
    return ok


@dataclass(frozen=True, slots=True)
class Copied:
    sha256: str
    size: int  # bytes written
    src_size: int  # the source as read (fstat of the open descriptor)
    src_mtime_ns: int
    how: str  # copy, reflink, link


def copy_file(src: str, dst: str, tick: Tick | None = None) -> Copied:
    """Copy ``src`` to a new file ``dst`` (mode bits kept), hashing on the way."""
    fin = open_source(src)
    try:
        st = os.fstat(fin)
        if st.st_size > CHUNK and _reflink(fin, st, dst):
            os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
            return Copied(hash_file(dst), st.st_size, st.st_size, st.st_mtime_ns, "reflink")
        sha = hashlib.sha256()
        fout = _create(dst, stat.S_IMODE(st.st_mode))
        size = 0
        try:
            while data := os.read(fin, CHUNK):
                sha.update(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fout, view):]
                size += len(data)
                if tick:
                    tick(len(data))
            os.utime(fout, ns=(st.st_mtime_ns, st.st_mtime_ns))  # as cp -p: runs repeat exactly
        finally:
            os.close(fout)
        return Copied(sha.hexdigest(), size, st.st_size, st.st_mtime_ns, "copy")
    finally:
        os.close(fin)


def link_file(src: str, dst: str) -> Copied:
    """Hard-link ``dst`` to ``src`` (the target of a link, never the link); the digest comes
    from reading the shared inode once."""
    try:  # refuses a FIFO before any link is made
        fin = open_source(src, follow=False)
    except Qa2Error:
        # A symbolic link: link() does not follow it on Linux, whatever os.link's
        # follow_symlinks says (CPython issue 41355): link the file it stands for, never the link.
        src = os.path.realpath(src)
        fin = open_source(src)
    try:
        st = os.fstat(fin)
        os.link(src, dst)
        return Copied(hash_fd(fin), st.st_size, st.st_size, st.st_mtime_ns, "link")
    finally:
        os.close(fin)


def gzip_file(src: str, dst: str, level: int = GZIP_LEVEL, tick: Tick | None = None) -> Copied:
    """Write ``dst`` = gzip(``src``); the digest is of the compressed bytes."""
    fin = open_source(src)
    try:
        st = os.fstat(fin)
        with open(dst, "xb") as raw:
            out = HashingWriter(raw)
            with _gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level,
                                mtime=int(st.st_mtime)) as gz:
                while data := os.read(fin, CHUNK):
                    gz.write(data)
                    if tick:
                        tick(len(data))
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
        return Copied(out.sha.hexdigest(), out.size, st.st_size, st.st_mtime_ns, "gzip")
    finally:
        os.close(fin)


# ---------------------------------------------------------------------------- directory trees


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry below a directory item (a CASA table, an ASDM), as a copy or tar sees it."""

    rel: str  # relative to the item, POSIX
    is_dir: bool
    size: int
    mtime_ns: int
    mode: int


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def walk_tree(top: str, root: str, problems: list[str] | None = None) -> list[TreeEntry]:
    """Every directory and regular file below ``top``, sorted, without ``table.lock``.

    Symbolic links are followed only when they resolve inside ``root`` (ORIGPATH); a link that
    leaves it, a link loop, and any FIFO, socket or device are problems: appended to
    ``problems`` when given (the scan lists them all), raised otherwise.
    """
    out: list[TreeEntry] = []
    found: list[str] = [] if problems is None else problems

    def walk(directory: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            found.append(f"{directory}: cannot list directory ({exc.strerror})")
            return
        for entry in entries:
            if entry.name in VOLATILE:
                continue
            path, child = entry.path, f"{rel}{entry.name}"
            st = lstat_checked(path, root, found)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    found.append(f"{path}: symbolic link loop (points back to a parent directory)")
                    continue
                out.append(TreeEntry(child, True, 0, st.st_mtime_ns, st.st_mode))
                walk(path, child + "/", ancestors | {key})
            else:
                out.append(TreeEntry(child, False, st.st_size, st.st_mtime_ns, st.st_mode))

    top_st = os.stat(top)
    walk(top, "", frozenset({(top_st.st_dev, top_st.st_ino)}))
    if problems is None and found:
        raise Qa2Error(found[0], lines=tuple(found))
    return out


def lstat_checked(path: str, root: str, problems: list[str],
                  warnings: list[str] | None = None) -> os.stat_result | None:
    """The stat of what ``path`` stands for, or ``None`` with a problem noted.

    A symbolic link counts as its target when that resolves inside ``root``; special files are
    refused by name without ever being opened. A broken link is a problem, or, when
    ``warnings`` is given, a warning (it holds no data to lose).
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(path)
            if not _inside(target, root):
                problems.append(f"{path}: symbolic link leaving ORIGPATH (to {target}): refused; "
                                "copy the file into the reduction or remove the link")
                return None
            st = os.stat(path)
    except FileNotFoundError:  # a link to nothing carries no data: said, and left out
        (problems if warnings is None else warnings).append(
            f"{path}: broken symbolic link, left out")
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problems.append(f"{path}: symbolic link loop: refused; fix or remove the link")
        else:
            problems.append(f"{path}: cannot read ({exc.strerror})")
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        problems.append(f"{path}: {special_kind(st.st_mode)}, not a file or directory: refused, "
                        "never opened")
        return None
    return st


def special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a special file"


def tree_fingerprint(entries: list[TreeEntry]) -> tuple[int, int]:
    """(bytes, newest mtime_ns) of a tree's files: the scan's and the copy's change check."""
    files = [e for e in entries if not e.is_dir]
    return sum(e.size for e in files), max((e.mtime_ns for e in files), default=0)


def tgz(sources: list[tuple[str, list[TreeEntry] | None]], dst: str,
        level: int = GZIP_LEVEL) -> tuple[Copied, int, int]:
    """Write ``dst`` = tar.gz of ``sources`` (path, its tree or None for a file), each under its
    base name, as regular files and directories only: links inside a table are stored as the
    files they stand for, with no owner names. Returns the result and the (bytes, newest
    mtime_ns) read, for the change check."""
    total = newest = 0
    with open(dst, "xb") as raw:
        out = HashingWriter(raw)
        with _gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for src, tree in sources:
                base, st, top = os.path.basename(src), os.stat(src), os.path.dirname(src)
                if tree is None:  # a single file, stored under its base name
                    tree = [TreeEntry(base, False, st.st_size, st.st_mtime_ns, st.st_mode)]
                else:
                    tar.addfile(_tarinfo(base, True, 0, st.st_mtime_ns, st.st_mode))
                    tree = [TreeEntry(f"{base}/{e.rel}", e.is_dir, e.size, e.mtime_ns, e.mode)
                            for e in tree]
                for e in ahead(tree, lambda e, top=top: None if e.is_dir else f"{top}/{e.rel}"):
                    name = e.rel
                    if e.is_dir:
                        tar.addfile(_tarinfo(name, True, 0, e.mtime_ns, e.mode))
                        continue
                    path = os.path.join(top, e.rel)
                    fd = open_source(path)
                    try:
                        fst = os.fstat(fd)
                        if (fst.st_size, fst.st_mtime_ns) != (e.size, e.mtime_ns):
                            raise changed(path)
                        with os.fdopen(os.dup(fd), "rb") as fh:
                            tar.addfile(_tarinfo(name, False, e.size, e.mtime_ns, e.mode), fh)
                    finally:
                        os.close(fd)
                    total += e.size
                    newest = max(newest, e.mtime_ns)
    os.utime(dst, ns=(newest, newest))
    return Copied(out.sha.hexdigest(), out.size, total, newest, "tgz"), total, newest


def _tarinfo(name: str, is_dir: bool, size: int, mtime_ns: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = size
    info.mtime = mtime_ns // 1_000_000_000
    info.mode = stat.S_IMODE(mode)
    info.uid = info.gid = 0  # the reducer's account means nothing to the PI
    info.uname = info.gname = ""
    return info


def iter_package_files(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every non-directory below ``top`` without following any link (verify,
    tar): a symlink or special file is yielded as what it is, for the caller to refuse."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames
                                        if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            yield path, os.lstat(path)
