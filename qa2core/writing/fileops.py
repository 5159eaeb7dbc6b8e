"""Byte-moving primitives. Every function that writes also returns the sha256 of what it wrote,
computed from the bytes as they pass, so each byte is read once (docs/casa-and-io.md §3).

Sources are only ever opened for reading, never through a special file: :func:`open_source`
opens with ``O_NONBLOCK`` and refuses anything that is not a regular file, so a FIFO planted in
a table cannot hang a run. Compression writes a new file; it never touches a linked file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import sys
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
from qa2core.planning.walk import (  # noqa: F401 - the walk lives in qa2core.planning.walk; its names stay here too
    VOLATILE,
    TreeEntry,
    _inside,
    iter_package_files,
    lstat_checked,
    special_kind,
    tree_fingerprint,
    walk_tree,
)

_FICLONE = 0x40049409 if os.uname().sysname == "Linux" else None  # linux/fs.h
CHUNK = 1 << 20
AHEAD = 64  # files hinted before they are read (see ahead)
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)  # Linux; elsewhere no hints
T = TypeVar("T")
Tick = Callable[[int], None]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A hard link can fail for reasons that only mean "copy instead".
LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


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


def identity(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file's bytes do: size, mtime and ctime. A writer can put the mtime
    back (``touch -r``, ``cp -p``); only the kernel sets the ctime."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def check_unchanged(fd: int, before: os.stat_result, path: str) -> None:
    """Raise :class:`SourceChanged` when the file open on ``fd`` changed since ``before``
    (its fstat at open): the bytes just read may be neither the old nor the new ones."""
    if identity(os.fstat(fd)) != identity(before):
        raise changed(path, "rewritten while it was read")


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


# ---------------------------------------------------------------------------- durability
# A rename publishes only what is on disk: files are flushed before the renames that name them,
# and the directories holding the renames after (as rsync --fsync and OCFL do).

def sync_filesystem(path: str) -> None:
    """Flush every written file and directory of the file system holding ``path`` (syncfs(2):
    one call for a whole build instead of one fsync per file); ``os.sync`` elsewhere."""
    if sys.platform != "linux":
        os.sync()
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make the renames and creations inside directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: str, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (never over an existing file, never through a link) with ``data``,
    flushed to disk before it returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
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


# A big copy asks the kernel to start writing its output to disk every WRITEBACK bytes
# (fadvise DONTNEED starts asynchronous writeback of the dirty pages, then drops the clean
# ones): the build's one syncfs before the swap then waits for the last stretch, not for the
# whole package, and gigabytes of package do not push the reducer's data out of the cache.
# Measured on 1.5 GB: copy + sync 2.6-3.3 s against 3.6-6.9 s (docs/casa-and-io.md 3.7).
WRITEBACK = 64 << 20
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)  # Linux; elsewhere the syncfs does it all


def _write_back(fd: int, offset: int, length: int) -> None:
    if _DONTNEED is not None:
        with contextlib.suppress(OSError):  # a hint: a file system without it loses nothing
            os.posix_fadvise(fd, offset, length, _DONTNEED)


def copy_file(src: str, dst: str, tick: Tick | None = None) -> Copied:
    """Copy ``src`` to a new file ``dst`` (mode bits kept), hashing on the way."""
    fin = open_source(src)
    try:
        st = os.fstat(fin)
        if st.st_size > CHUNK and _reflink(fin, st, dst):
            os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
            check_unchanged(fin, st, src)
            return Copied(hash_file(dst), st.st_size, st.st_size, st.st_mtime_ns, "reflink")
        sha = hashlib.sha256()
        fout = _create(dst, stat.S_IMODE(st.st_mode))
        size = kicked = 0
        try:
            while data := os.read(fin, CHUNK):
                sha.update(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fout, view):]
                size += len(data)
                if size - kicked >= WRITEBACK:
                    _write_back(fout, kicked, size - kicked)
                    kicked = size
                if tick:
                    tick(len(data))
            os.utime(fout, ns=(st.st_mtime_ns, st.st_mtime_ns))  # as cp -p: runs repeat exactly
        finally:
            os.close(fout)
        check_unchanged(fin, st, src)
        return Copied(sha.hexdigest(), size, st.st_size, st.st_mtime_ns, "copy")
    finally:
        os.close(fin)


def names_in(directory: str | os.PathLike) -> list[str]:
    """The names in a directory, or none when it cannot be listed (absent, not a directory)."""
    try:
        return os.listdir(directory)
    except OSError:
        return []


def rewrite_file(src: str, dst: str, renames: tuple[tuple[str, str], ...]) -> Copied:
    """Write ``dst`` = ``src`` with the quoted file names in ``renames`` replaced (a pipeline
    manifest naming member files the package renames: qa2core.planning.naming.rewrite)."""
    from qa2core.planning.naming import REWRITE_MAX_BYTES, rewrite

    fin = open_source(src)
    try:
        st = os.fstat(fin)
        chunks, size = [], 0
        while size <= REWRITE_MAX_BYTES and (data := os.read(fin, CHUNK)):
            chunks.append(data)
            size += len(data)
        if size > REWRITE_MAX_BYTES:
            raise Qa2Error(f"{src}: too large to rewrite ({st.st_size} bytes)")
        check_unchanged(fin, st, src)
    finally:
        os.close(fin)
    out = rewrite(b"".join(chunks), renames)
    fout = _create(dst, stat.S_IMODE(st.st_mode))
    try:
        view = memoryview(out)
        while view:
            view = view[os.write(fout, view):]
        os.utime(fout, ns=(st.st_mtime_ns, st.st_mtime_ns))
    finally:
        os.close(fout)
    return Copied(hashlib.sha256(out).hexdigest(), len(out), st.st_size, st.st_mtime_ns, "rewrite")


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
        linked = os.fstat(fin)  # the new link changed the ctime; the bytes must not change
        if linked.st_size != st.st_size or linked.st_mtime_ns != st.st_mtime_ns:
            raise changed(src, "rewritten while it was linked")
        sha = hash_fd(fin)
        check_unchanged(fin, linked, src)
        return Copied(sha, st.st_size, st.st_size, st.st_mtime_ns, "link")
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
        check_unchanged(fin, st, src)
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns))
        return Copied(out.sha.hexdigest(), out.size, st.st_size, st.st_mtime_ns, "gzip")
    finally:
        os.close(fin)


# ---------------------------------------------------------------------------- directory trees


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
                        check_unchanged(fd, fst, path)  # a table file rewritten as it was read
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

