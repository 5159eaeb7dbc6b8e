"""What a campaign did: one outcome per job, the live progress line and the summary table."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa2core.batch.jobs import Job


def human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # unreachable


@dataclass
class Outcome:
    job: Job
    status: str  # succeeded | failed | skipped
    attempts: int = 0
    duration: float = 0.0
    bytes: int = 0
    findings: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    log: str = ""
    note: str = ""

    @classmethod
    def from_result(cls, job: Job, result: dict[str, Any]) -> Outcome:
        return cls(job, result.get("status", "failed"), result.get("attempt", 0),
                   result.get("duration", 0.0), result.get("bytes", 0), result.get("findings", []),
                   result.get("errors", []), result.get("warnings", []), result.get("log", ""))

    def first_problem(self) -> str:
        if self.errors:
            return self.errors[0]
        return next((f"{f['path']}: {f['message']} [{f['rule']}]" for f in self.findings
                     if f.get("level") == "ERROR"), self.note)

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job.id, "number": self.job.number, "command": self.job.command,
                "packpath": str(self.job.target), "status": self.status, "attempts": self.attempts,
                "duration": round(self.duration, 3), "bytes": self.bytes,
                "findings": self.findings, "errors": self.errors, "warnings": self.warnings,
                "log": self.log, "note": self.note}


@dataclass
class CampaignResult:
    path: Path
    ledger: Path
    run: str
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.status in ("succeeded", "skipped") for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "jobs_file": str(self.path), "ledger": str(self.ledger),
                "run": self.run, **{s: self.count(s) for s in ("succeeded", "failed", "skipped")},
                "jobs": [o.to_json() for o in sorted(self.outcomes, key=lambda o: o.job.number)]}

    def rows(self) -> list[list[str]]:
        return [[o.job.id, o.status, f"{o.duration:.1f} s", human_bytes(o.bytes), o.first_problem()]
                for o in sorted(self.outcomes, key=lambda o: o.job.number)]


HEADER = ["job", "status", "time", "bytes", "first problem"]


def plain_table(result: CampaignResult) -> str:
    rows = [HEADER, *result.rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)),
                                r[-1]]).rstrip() for r in rows)


def rich_table(result: CampaignResult) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"qa2 batch: {result.path.name}"))
    for name in HEADER:
        table.add_column(name, justify="right" if name in ("time", "bytes") else "left")
    style = {"succeeded": "green", "failed": "bold red", "skipped": "dim"}
    for row in result.rows():  # Text: a "[rule]" in a message is not rich markup
        table.add_row(*(Text(cell, style=style[row[1]] if i == 1 else "") for i, cell in enumerate(row)))
    return table


class Progress:
    """Counts for the live line on stderr: done, failed, running, bytes written."""

    def __init__(self, total: int, skipped: int) -> None:
        self.total, self.done, self.failed = total, skipped, 0
        self.running: dict[str, int] = {}  # job -> bytes written by its current attempt
        self.written = 0
        self.lock = threading.Lock()
        self.shown = 0.0

    def line(self) -> str:
        written = self.written + sum(self.running.values())
        return (f"qa2: batch: {self.done}/{self.total} done ({self.failed} failed), "
                f"{len(self.running)} running, {human_bytes(written)} written")

    def due(self, every: float = 2.0) -> bool:
        if time.monotonic() - self.shown < every:
            return False
        self.shown = time.monotonic()
        return True
