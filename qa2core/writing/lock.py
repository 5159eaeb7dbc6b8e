"""One writer per PACKPATH: an exclusive ``flock`` on ``PACKPATH.qa2/lock``, outside the
delivered tree. The kernel releases it when the holder dies, kill -9 included, so there is no
stale lock to take over and no check-then-unlink race; it is honoured across NFS clients.

Readers that write nothing into PACKPATH (``qa2 tar``) take it shared (``LOCK_SH``): any number
of them at once, never beside a writer. A reader that finds an interrupted run to recover
upgrades to the exclusive lock (:meth:`PackLock.exclusive`), or is refused when another reader
holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from qa2core.errors import Qa2Error
from qa2core.planning import paths


class PackLock:
    """``with PackLock(pack, "package"):`` or :class:`Qa2Error` naming the holder(s).

    ``shared=True``: a reader's lock (``flock`` ``LOCK_SH``), held by any number of readers at
    once and by no writer meanwhile. The lock file names the holders, one line each (a writer
    empties it; the last reader to leave empties it)."""

    def __init__(self, packpath: Path, what: str = "qa2", *, shared: bool = False) -> None:
        self.pack = packpath
        self.path = paths.lock_file(packpath)
        self.me = f"{what} pid {os.getpid()}@{socket.gethostname()}"
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> PackLock:
        paths.refuse_links(self.pack)
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise Qa2Error(f"{self.path}: a symbolic link in qa2's bookkeeping: never followed; "
                           "remove it and run again [state.link]") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted as the lock
            os.close(fd)
            raise Qa2Error(f"{self.path}: not a regular file in qa2's bookkeeping: never used; "
                           "remove it and run again [state.link]")
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holders(fd)
            os.close(fd)
            raise Qa2Error(f"{self.pack}: another qa2 run holds the lock ({holder}); wait for it "
                           "to finish [lock.held]") from None
        if not self._names(fd):  # a first run giving up removed the file we locked: not a lock
            os.close(fd)
            return self.__enter__()
        try:
            if self.shared:  # beside the other readers' lines
                os.lseek(fd, 0, os.SEEK_END)
            else:
                os.ftruncate(fd, 0)
            os.write(fd, (self.me + "\n").encode())
        except OSError as exc:  # a full disk: say where, and let go of the lock
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self.fd = fd
        return self

    def _names(self, fd: int) -> bool:
        """The lock file's path still names the file ``fd`` locked."""
        try:
            here, locked = os.lstat(self.path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (locked.st_dev, locked.st_ino)

    @staticmethod
    def _holders(fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        lines = os.read(fd, 2000).decode(errors="replace").split("\n")
        return ", ".join(x.strip() for x in lines if x.strip()) or "another run"

    def exclusive(self, why: str) -> None:
        """A reader's shared lock made exclusive, to repair PACKPATH (an interrupted run's swap)
        before reading it; :class:`Qa2Error` when another reader holds it too. Give it back
        with :meth:`share`. (``flock`` converts by letting go first: a failed upgrade leaves no
        lock, so the reader stops.)"""
        assert self.fd is not None and self.shared, "a shared PackLock, entered"
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holders(self.fd)
            self._release(truncate=False)
            raise Qa2Error(f"{self.pack}: {why}, which needs the lock alone, and another qa2 run "
                           f"reads the package ({holder}); run again when it has finished "
                           "[lock.held]") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (self.me + "\n").encode(), 0)  # at the start, not after NUL bytes

    def share(self) -> None:
        """Back to a reader's shared lock after :meth:`exclusive`."""
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def _release(self, truncate: bool) -> None:
        if self.fd is None:
            return
        if truncate and self.shared:  # the last reader out empties the file; others leave it
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                truncate = False
        if truncate:
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing releases the flock
        self.fd = None

    def __exit__(self, *exc: object) -> None:
        self._release(truncate=True)
