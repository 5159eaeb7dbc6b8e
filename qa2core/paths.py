"""Where qa2 keeps what is not the delivery: everything beside PACKPATH, nothing inside it.

``PACKPATH/`` holds exactly the OUS tree and ``manifest-sha256.txt`` (docs/contract.md).
Beside it: ``PACKPATH.ticket.zip`` (delivered to the SCOPS ticket) and ``PACKPATH.qa2/``,
qa2's bookkeeping: the lock, the journal of the last run, and the scratch space where a run
builds before its swap (same file system as PACKPATH, so the swap is a rename).
"""

from __future__ import annotations

from pathlib import Path


def ticket_zip(pack: Path) -> Path:
    return pack.with_name(pack.name + ".ticket.zip")


def state_dir(pack: Path) -> Path:
    return pack.with_name(pack.name + ".qa2")


def lock_file(pack: Path) -> Path:
    return state_dir(pack) / "lock"


def journal_file(pack: Path) -> Path:
    return state_dir(pack) / "journal.json"


def partial_dir(pack: Path) -> Path:
    return state_dir(pack) / "partial"
