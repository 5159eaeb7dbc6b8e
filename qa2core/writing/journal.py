"""What the last run wrote, so the next run over an unchanged source skips the work.

``PACKPATH.qa2/journal.json`` (beside the package, never delivered) maps each packaged file
(relative to PACKPATH) to the fingerprint of its sources (path, size, mtime_ns), the mode and
action that made it, and the packaged file's own size, mtime_ns and sha256; ``run`` records how
the package was made (purpose, style, plugin, mode). A file is reused (linked from the previous
package, never re-read from the source) only when all of these still match and its bytes still
hash to the recorded sha256; anything else is redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from qa2core.planning import paths


@dataclass(frozen=True, slots=True)
class Entry:
    sources: tuple[tuple[str, int, int], ...]
    mode: str
    action: str
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Journal:
    run: dict[str, str]
    entries: dict[str, Entry]
    # member directory (relative to PACKPATH) -> how it was made: plugin, style, mode, purpose.
    # One package may hold members of different plugins (a 12m member and an appended TP one):
    # verify judges each by its own.
    members: dict[str, dict[str, str]] = field(default_factory=dict)


def load(packpath: Path) -> Journal:
    """The journal beside ``packpath``; empty when missing or unreadable (redo everything)."""
    try:
        fd = os.open(paths.journal_file(packpath), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:  # never through a link (paths.refuse_links)
            raw = json.loads(fh.read())
        entries = {k: Entry(tuple(tuple(s) for s in v["sources"]), v["mode"], v["action"],
                            v["sha256"], v["size"], v["mtime_ns"])
                   for k, v in raw["entries"].items()}
        members = {str(k): {str(a): str(b) for a, b in v.items()}
                   for k, v in dict(raw.get("members", {})).items() if isinstance(v, dict)}
        return Journal(dict(raw.get("run", {})), entries, members)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Journal({}, {})


def dump(entries: dict[str, Entry], run: dict[str, str],
         left_out: tuple[tuple[str, str], ...] = (),
         members: dict[str, dict[str, str]] | None = None) -> str:
    data = {"version": 3, "run": run, "members": dict(sorted((members or {}).items())),
            "left_out": [list(pair) for pair in left_out],
            "entries": {k: {"sources": v.sources, "mode": v.mode, "action": v.action,
                            "sha256": v.sha256, "size": v.size, "mtime_ns": v.mtime_ns}
                        for k, v in sorted(entries.items())}}
    # no indent: the C encoder. ASCII only: a name that is not UTF-8 (a surrogate escape from
    # os) is written as \udcXX and loads back as the same str.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def still_valid(old: Entry | None, packaged: str) -> bool:
    """The packaged file may be the one the journal describes: a cheap first look (size and
    mtime); its bytes decide (qa2core.writing.execute hashes it before reusing it)."""
    if old is None:
        return False
    try:
        st = os.lstat(packaged)
    except OSError:
        return False
    return st.st_size == old.size and st.st_mtime_ns == old.mtime_ns
