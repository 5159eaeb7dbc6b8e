"""What a finished run wrote, so the next run over an unchanged source skips the work.

``PACKPATH/.qa2-journal.json`` maps each packaged file (relative to PACKPATH) to the
fingerprint of its sources (path, size, mtime_ns), the mode and action that made it, and the
packaged file's own size, mtime_ns and sha256. A file is reused (hard-linked from the previous
package into the new build, never re-read or re-hashed) only when every one of these still
matches; anything else is redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from qa2core.manifest import write_atomic

NAME = ".qa2-journal.json"


@dataclass(frozen=True)
class Entry:
    sources: tuple[tuple[str, int, int], ...]
    mode: str
    action: str
    sha256: str
    size: int
    mtime_ns: int


def run_info(packpath: Path) -> dict[str, str]:
    """How the package was last written: ``purpose``, ``style``, ``plugin``, ``mode``."""
    try:
        return dict(json.loads((packpath / NAME).read_text()).get("run", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def load(packpath: Path) -> dict[str, Entry]:
    try:
        raw = json.loads((packpath / NAME).read_text())
        return {k: Entry(tuple(tuple(s) for s in v["sources"]), v["mode"], v["action"],
                         v["sha256"], v["size"], v["mtime_ns"]) for k, v in raw["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no journal, or one we cannot trust: redo everything


def save(path: Path, entries: dict[str, Entry], run: dict[str, str] | None = None) -> None:
    data = {"version": 1, "run": run or {},
            "entries": {k: {"sources": v.sources, "mode": v.mode, "action": v.action,
                            "sha256": v.sha256, "size": v.size, "mtime_ns": v.mtime_ns}
                        for k, v in sorted(entries.items())}}
    write_atomic(path, json.dumps(data, separators=(",", ":")))  # no indent: C encoder


def still_valid(old: Entry | None, packaged: Path) -> bool:
    """The packaged file is the one the journal describes (not edited or replaced since)."""
    if old is None:
        return False
    try:
        st = os.stat(packaged)
    except OSError:
        return False
    return st.st_size == old.size and st.st_mtime_ns == old.mtime_ns
