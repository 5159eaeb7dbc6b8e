"""One writer per PACKPATH: an exclusive ``flock`` on ``PACKPATH.qa2/lock``, outside the
delivered tree. The kernel releases it when the holder dies, kill -9 included, so there is no
stale lock to take over and no check-then-unlink race; it is honoured across NFS clients.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from qa2core import paths
from qa2core.errors import Qa2Error


class PackLock:
    """``with PackLock(pack, "package"):`` or :class:`Qa2Error` naming the holder."""

    def __init__(self, packpath: Path, what: str = "qa2") -> None:
        self.pack = packpath
        self.path = paths.lock_file(packpath)
        self.me = f"{what} pid {os.getpid()}@{socket.gethostname()}"
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another run"
            os.close(fd)
            raise Qa2Error(f"{self.pack}: another qa2 run holds the lock ({holder}); wait for it "
                           "to finish [lock.held]") from None
        if not self._names(fd):  # a first run giving up removed the file we locked: not a lock
            os.close(fd)
            return self.__enter__()
        try:
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

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None
