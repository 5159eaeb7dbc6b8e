"""Byte-moving primitives. Every function that writes also returns the sha256 of what it wrote,
computed from the bytes as they pass (each byte read once; peers.md §3.3).

Sources are only ever opened for reading. Compression writes a new file; it never touches a
linked file in place (peers.md §3.6).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

try:  # ISA-L gzip: ~10x stdlib zlib at a 1.5 % larger output (peers.md §3.4)
    from isal import igzip as _gzip

    GZIP_LEVEL = 2
except ImportError:  # pragma: no cover - isal is a dependency, this keeps a broken env usable
    import gzip as _gzip  # type: ignore[no-redef]

    GZIP_LEVEL = 6

_FICLONE = 0x40049409 if os.uname().sysname == "Linux" else None  # linux/fs.h
CHUNK = 1 << 20
Tick = Callable[[int], None]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A hard link can fail for reasons that only mean "copy instead".
LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


class HashingWriter:
    """A write-only file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def hash_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


_REFLINK_WORKS: dict[tuple[int, int], bool] = {}  # (source dev, target dev) -> answer


def reflink(src: Path, dst: Path) -> bool:
    """Share ``src``'s extents with a new ``dst`` (copy-on-write: btrfs, XFS, ZFS). False where
    the file system cannot (ext4), leaving no ``dst`` behind. The answer is remembered per pair
    of devices: probing costs a create and an unlink per file."""
    key = (os.stat(src).st_dev, os.stat(dst.parent).st_dev)
    if _FICLONE is None or _REFLINK_WORKS.get(key) is False:
        return False
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
        except OSError:
            ok = False
        else:
            ok = True
    _REFLINK_WORKS[key] = ok
    if not ok:
        os.unlink(dst)
    return ok


def copy_file(src: Path, dst: Path, tick: Tick | None = None) -> str:
    """Copy ``src`` to a new file ``dst`` (mode bits kept), hashing on the way; ``tick`` is
    told the bytes of each chunk (progress display)."""
    sha = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while n := fin.readinto(buf):
            sha.update(view[:n])
            fout.write(view[:n])
            if tick:
                tick(n)
    shutil.copymode(src, dst)
    return sha.hexdigest()


def link_file(src: Path, dst: Path) -> str:
    """Hard-link ``dst`` to ``src``; the digest comes from reading the shared inode once."""
    os.link(src, dst)
    return hash_file(dst)


def gzip_file(src: Path, dst: Path, level: int = GZIP_LEVEL, tick: Tick | None = None) -> str:
    """Write ``dst`` = gzip(``src``); the digest is of the compressed bytes."""
    with open(src, "rb") as fin, open(dst, "xb") as raw:
        out = HashingWriter(raw)
        mtime = int(os.stat(src).st_mtime)
        with _gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=mtime) as gz:
            while chunk := fin.read(CHUNK):
                gz.write(chunk)
                if tick:
                    tick(len(chunk))
    return out.sha.hexdigest()


def tgz(sources: Iterable[Path], dst: Path, level: int = GZIP_LEVEL) -> str:
    """Write ``dst`` = tar.gz of ``sources``, each stored under its base name."""
    with open(dst, "xb") as raw:
        out = HashingWriter(raw)
        with _gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level) as gz, \
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for src in sources:
                tar.add(src, arcname=src.name, filter=_portable_member)
    return out.sha.hexdigest()


# casacore's lock files describe the reducer's open sessions; a shipped stale lock only
# produces lock errors for the PI (casacore issues 948), so they stay out of the package.
VOLATILE = frozenset({"table.lock"})


def _portable_member(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if info.name.rsplit("/", 1)[-1] in VOLATILE:
        return None
    # Owner names of the reducer's account mean nothing to the PI.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def iter_files(top: Path) -> Iterable[Path]:
    """Regular files below ``top`` (links followed), sorted for stable manifests."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name not in VOLATILE:
                yield Path(dirpath, name)
