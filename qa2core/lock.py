"""One run per PACKPATH: ``PACKPATH/.qa2.lock`` holds ``pid@host``; a dead holder's lock is
taken over (same host only: a pid on another host cannot be checked)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from qa2core.errors import Qa2Error

NAME = ".qa2.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PackLock:
    def __init__(self, packpath: Path) -> None:
        self.path = packpath / NAME
        self.me = f"{os.getpid()}@{socket.gethostname()}"

    def __enter__(self) -> PackLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.path.read_text().strip() if self.path.exists() else ""
                pid, _, host = holder.partition("@")
                if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                who = holder or "unknown holder"
                raise Qa2Error(f"{self.path.parent}: another qa2 run holds the lock ({who}); "
                               f"wait for it, or remove {self.path} if that run is dead") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(self.me + "\n")
            return self
        raise Qa2Error(f"{self.path}: could not take the lock")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
