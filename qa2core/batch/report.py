"""What a campaign did: one outcome per job, the live progress line and the summary table."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
    interrupted: int = 0  # the signal that stopped the campaign (2 SIGINT, 15 SIGTERM), or 0
    report: Path | None = None  # JOBS.report-<time>-<run>.txt, written at the end (write_report)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(o.status in ("succeeded", "skipped")
                                            for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "jobs_file": str(self.path), "ledger": str(self.ledger),
                "run": self.run, **{s: self.count(s) for s in ("succeeded", "failed", "skipped")},
                **({"interrupted": self.interrupted} if self.interrupted else {}),
                "report": str(self.report) if self.report else None,
                "jobs": [o.to_json() for o in sorted(self.outcomes, key=lambda o: o.job.number)]}

    def rows(self) -> list[list[str]]:
        return [[o.job.id, o.status, f"{o.duration:.1f} s", human_bytes(o.bytes), o.first_problem()]
                for o in sorted(self.outcomes, key=lambda o: o.job.number)]


HEADER = ["job", "status", "time", "bytes", "first problem"]


def report_path(result: CampaignResult, when: datetime | None = None) -> Path:
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return result.path.with_name(f"{result.path.name.removesuffix('.toml')}.report-{stamp}-"
                                 f"{result.run}.txt")


def report_text(result: CampaignResult) -> str:
    """The campaign's report: counts, then each job that failed or was interrupted, with its
    first problem and its log; the table of every job last."""
    counts = ", ".join(f"{result.count(s)} {s}" for s in
                       ("succeeded", "failed", "skipped", "interrupted"))
    lines = [f"qa2 batch report: {result.path}", f"run {result.run}, ledger {result.ledger}",
             counts + (f"; stopped by signal {result.interrupted}" if result.interrupted else "")]
    for state in ("failed", "interrupted"):
        bad = sorted((o for o in result.outcomes if o.status == state), key=lambda o: o.job.number)
        if bad:
            lines += ["", f"{state}:"]
        for o in bad:
            lines += [f"  {o.job.label}: {o.first_problem() or state}", f"    log: {o.log}"]
    return "\n".join([*lines, "", plain_table(result), ""])


def write_report(result: CampaignResult) -> Path | None:
    """``JOBS.report-<UTC time>-<run>.txt`` beside the ledger, one per campaign run; None if it
    cannot be written (the run's outcome stands; the ledger holds it all)."""
    path = report_path(result)
    try:
        path.write_text(report_text(result), encoding="utf-8", errors="backslashreplace")
    except OSError:
        return None
    return path


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
    style = {"succeeded": "green", "failed": "bold red", "skipped": "dim", "interrupted": "yellow"}
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
        self.high = 0  # the bytes shown never go back (a package's size differs from its sources')

    def line(self) -> str:
        written = self.high = max(self.high, self.written + sum(self.running.values()))
        return (f"qa2: batch: {self.done}/{self.total} done ({self.failed} failed), "
                f"{len(self.running)} running, {human_bytes(written)} written")

    def due(self, every: float = 2.0) -> bool:
        if time.monotonic() - self.shown < every:
            return False
        self.shown = time.monotonic()
        return True
