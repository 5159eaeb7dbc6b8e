"""The campaign's truth: ``JOBS.ledger.jsonl`` beside the jobs file, and the fingerprints that
say whether a finished job is still up to date.

One JSON object per line, appended and fsynced by the ``qa2 batch`` process alone (workers never
write it), so nothing depends on a scheduler's memory and a crash loses at most a line being
written (a damaged line is skipped with a warning). Records::

    {"v": 1, "run": ID, "state": "campaign", "time": T, "jobs": N, "executor": "dask"}
    {"v": 1, "run": ID, "job": JOB, "attempt": 1, "state": "started", "time": T, "host": H}
    {"v": 1, "run": ID, "job": JOB, "attempt": 1, "state": "succeeded" | "failed", "time": T,
     "duration": S, "bytes": B, "spec": HASH, "result": {...}}
    {"v": 1, "run": ID, "job": JOB, "state": "skipped", "time": T, "reason": "up to date ..."}

A job is up to date when its last ``succeeded`` record has the job's current spec hash and the
fingerprints in its result (sources read, package written) match the files now.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qa2core.errors import Qa2Error

VERSION = 1


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def fingerprint(*roots: str) -> str:
    """(path, type, size, mtime_ns) of everything at and below each root, links not followed,
    hashed. Cheap (metadata only) and changes with any file added, removed or rewritten."""
    digest = hashlib.sha256()
    for root in roots:
        digest.update(f"\0root {root}\n".encode(errors="surrogateescape"))
        try:
            st = os.lstat(root)
        except OSError:
            digest.update(b"missing\n")
            continue
        stack = [("", st)]
        while stack:
            rel, st = stack.pop()
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            size = 0 if kind == "d" else st.st_size
            digest.update(f"{rel}\0{kind}\0{size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
            if kind == "d":
                with os.scandir(os.path.join(root, rel)) as it:
                    entries = sorted(it, key=lambda e: e.name, reverse=True)
                stack += [(os.path.join(rel, e.name), e.stat(follow_symlinks=False)) for e in entries]
    return digest.hexdigest()


JOB_STATES = ("started", "succeeded", "failed", "skipped")


def _malformed(rec: Any) -> str | None:
    """Why a parsed line is not a record qa2 can use, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if rec.get("state") in JOB_STATES and not isinstance(rec.get("job"), str):
        return f"a {rec['state']!r} record without a job name (a string)"
    if rec.get("state") in ("succeeded", "failed") and not isinstance(rec.get("result", {}), dict):
        return "its result is not an object"
    return None


class Ledger:
    """Append-only JSON lines; held with an exclusive lock while a campaign runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.warnings: list[str] = []

    def records(self) -> list[dict[str, Any]]:
        """Every well-formed record; a line that is not (bytes that are not UTF-8, not JSON, a
        job record without a string ``job``, a line cut short) is skipped, with one warning
        in :attr:`warnings` each. Damage never stops a run: at worst a job runs again."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out, self.warnings = [], []
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            why = None
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                why = "not UTF-8"
            except ValueError:
                why = "not a JSON record (cut short?)"
            else:
                why = _malformed(rec)
            if why:
                self.warnings.append(f"{self.path}:{number}: {why}; line skipped")
            elif rec.get("v") == VERSION:
                out.append(rec)
        return out

    def last_success(self) -> dict[str, dict[str, Any]]:
        """job -> its last ``succeeded`` record, unless a later failure replaced it."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self.records():
            if rec.get("state") == "succeeded":
                out[rec["job"]] = rec
            elif rec.get("state") == "failed":
                out.pop(rec.get("job"), None)
        return out

    def last_state(self) -> dict[str, dict[str, Any]]:
        """job -> its last ``succeeded``, ``failed`` or ``skipped`` record (``qa2 batch status``)."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self.records():
            if rec.get("state") in ("succeeded", "failed", "skipped") and "job" in rec:
                out[rec["job"]] = rec
        return out

    def open(self) -> Ledger:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Qa2Error(f"{self.path}: another qa2 batch is running this jobs file; wait "
                           "for it to finish [batch.ledger_locked]") from None
        self.fd = fd
        return self

    def append(self, run: str, **record: Any) -> None:
        """One whole record per ``write`` (O_APPEND), fsynced. A file whose last line was cut
        short (a crash mid-write) gets a newline first, so the cut line cannot swallow it."""
        assert self.fd is not None, "Ledger.open() first"
        line = json.dumps({"v": VERSION, "run": run, **record, "time": record.get("time") or now()},
                          ensure_ascii=True, default=str)
        lead = b""
        size = os.fstat(self.fd).st_size
        if size:
            with open(self.path, "rb") as fh:
                fh.seek(size - 1)
                lead = b"" if fh.read(1) == b"\n" else b"\n"
        os.write(self.fd, lead + line.encode() + b"\n")
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
