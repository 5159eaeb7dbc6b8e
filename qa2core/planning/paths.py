"""Where qa2 keeps what is not the delivery: everything beside PACKPATH, nothing inside it.

``PACKPATH/`` holds exactly the OUS tree and ``manifest-sha256.txt`` (docs/contract.md).
Beside it: ``PACKPATH.ticket.zip`` (delivered to the SCOPS ticket) and ``PACKPATH.qa2/``,
qa2's bookkeeping: the lock, the journal of the last run, and the scratch space where a run
builds before its swap (same file system as PACKPATH, so the swap is a rename).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from qa2core.errors import Qa2Error


def ticket_zip(pack: Path) -> Path:
    pack = _named(pack)
    return pack.with_name(pack.name + ".ticket.zip")


def state_dir(pack: Path) -> Path:
    pack = _named(pack)
    return pack.with_name(pack.name + ".qa2")


def _named(pack: Path) -> Path:
    """``.`` or ``..`` as PACKPATH: the directory they stand for, which has a name."""
    return pack if pack.name not in ("", ".", "..") else Path(os.path.abspath(pack))


def lock_file(pack: Path) -> Path:
    return state_dir(pack) / "lock"


def journal_file(pack: Path) -> Path:
    return state_dir(pack) / "journal.json"


def partial_dir(pack: Path) -> Path:
    return state_dir(pack) / "partial"


def refuse_links(pack: Path) -> None:
    """qa2's bookkeeping is never followed: ``PACKPATH.qa2`` and what it holds (lock, journal,
    scratch) must be what they seem, or a run writing there (as root, at some ARCs) would write
    through a link planted in it. A link refuses the run by name."""
    state = state_dir(pack)
    for path in (state, *((state / n) for n in _names(state)),
                 *((state / "partial" / n) for n in _names(state / "partial"))):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a file or directory"
            raise Qa2Error(f"{path}: {kind} in qa2's bookkeeping: never followed; remove it "
                           "and run again [state.link]")


def _names(directory: Path) -> list[str]:
    try:
        if stat.S_ISLNK(os.lstat(directory).st_mode):
            return []  # reported by the caller, never listed through
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
