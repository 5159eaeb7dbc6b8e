"""Machine description and Markdown tables for the benchmark report."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Result:
    """Repeated timings of one operation on one case."""

    case: str
    key: str
    label: str
    kind: str  # "baseline" or "qa2"
    nbytes: int  # bytes the MB/s column divides by
    nfiles: int
    cmd_s: list[float] = field(default_factory=list)  # the operation itself
    sync_s: list[float] = field(default_factory=list)  # the sync right after it
    out_bytes: int | None = None  # compressed size, for compression runs
    rss_mb: list[float] = field(default_factory=list)  # peak RSS of the measured process, per run
    errors: list[str] = field(default_factory=list)  # one line per failed run
    command: str = ""  # the failing command line, for the report

    @property
    def ok(self) -> bool:
        return bool(self.cmd_s)

    @property
    def median(self) -> float:
        return statistics.median(self.cmd_s)

    @property
    def median_synced(self) -> float:
        return statistics.median(c + s for c, s in zip(self.cmd_s, self.sync_s, strict=True))

    @property
    def spread(self) -> str:
        return f"{min(self.cmd_s):.2f}–{max(self.cmd_s):.2f}"


@dataclass(frozen=True)
class Ratio:
    """A qa2 operation against the sum of one or more baselines on the same case."""

    case: str
    qa2: str
    baselines: tuple[str, ...]


def _run(args: Sequence[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def _first_line(args: Sequence[str]) -> str:
    lines = _run(args).splitlines()
    return lines[0] if lines else f"{args[0]}: not found"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1 << 20)
    return 0.0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(workdir: Path, repo: Path) -> list[tuple[str, str]]:
    df = _run(["df", "-T", str(workdir)]).splitlines()
    fs = df[-1].split() if len(df) > 1 else ["?", "?"]
    commit = _run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = " (with uncommitted changes)" if _run(["git", "-C", str(repo), "status", "--porcelain"]) else ""
    return [
        ("CPU", f"{_cpu_model()}, nproc {os.cpu_count()} "
                f"(usable {len(os.sched_getaffinity(0))})"),
        ("RAM", f"{_mem_gib():.1f} GiB"),
        ("Kernel", platform.release()),
        ("File system", f"{fs[1]} on {fs[0]} (`df -T`); `stat -f`: "
                        f"{_run(['stat', '-f', '-c', '%T', str(workdir)])}"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("qa2", f"qa2core {_version('qa2core')} at commit {commit or '?'}{dirty}"),
        ("isal / astropy / numpy", f"{_version('isal')} / {_version('astropy')} / {_version('numpy')}"),
        ("Tools", "; ".join(_first_line([tool, "--version"]) for tool in ("cp", "sha256sum", "gzip"))
                  + "; " + " ".join(_first_line(["openssl", "version"]).split()[:2])),
    ]


def mbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e6 / seconds:,.0f}" if seconds > 0 else "∞"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def timings_table(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        if not r.ok:
            rows.append([r.case, r.label, "—", "—", "—", "—", "—", "FAILED (see Failures)"])
            continue
        per_file = f"{r.median / r.nfiles * 1e6:,.0f}" if r.nfiles >= 100 else "—"
        notes = []
        if r.out_bytes:
            notes.append(f"out {r.out_bytes / 1e6:,.0f} MB (÷{r.nbytes / r.out_bytes:.2f})")
        if r.errors:
            notes.append(f"{len(r.errors)} run(s) failed, median of {len(r.cmd_s)}")
        extra = "; ".join(notes)
        rss = f"{max(r.rss_mb):,.0f}" if r.rss_mb else "—"
        rows.append([r.case, r.label, f"{r.median:.2f}", r.spread, f"{r.median_synced:.2f}",
                     mbps(r.nbytes, r.median), per_file, rss, extra])
    return table(["case", "operation", "median s", "min–max s", "s incl. sync", "MB/s",
                  "µs/file", "peak RSS MiB", "notes"], rows, right_from=2)


def previous_medians(path: Path) -> tuple[str, dict[tuple[str, str], float]]:
    """(when and load, {(case, operation label): median s}) from the Timings table of an
    earlier report."""
    try:
        text = path.read_text()
    except OSError:
        return "", {}
    when = re.search(r"^Run (.+? UTC)", text, re.M)
    load = re.search(r"^Load average \(1/5/15 min\) at start ([\d.]+)", text, re.M)
    rows = re.findall(r"^\| (\w+) \| ([^|]+?) \| ([\d.]+) \| [\d.]+–[\d.]+ \|", text, re.M)
    label = (when.group(1) if when else "?") + (f", load {load.group(1)}" if load else "")
    return label, {(c, label): float(s) for c, label, s in rows}


def ratio_rows(ratios: Sequence[Ratio], by_key: dict[tuple[str, str], Result]) -> list[list[str]]:
    rows = []
    for ratio in ratios:
        q = by_key.get((ratio.case, ratio.qa2))
        bases = [by_key.get((ratio.case, b)) for b in ratio.baselines]
        if q is None or not q.ok or not all(b is not None and b.ok for b in bases):
            continue
        base_s = sum(b.median for b in bases if b)
        base_synced = sum(b.median_synced for b in bases if b)
        size = ""
        if q.out_bytes and len(bases) == 1 and bases[0] and bases[0].out_bytes:
            size = f"{q.out_bytes / bases[0].out_bytes:.3f}"
        rows.append([ratio.case, q.label, " + ".join(b.label for b in bases if b), f"{q.median:.2f}",
                     f"{base_s:.2f}", f"{q.median / base_s:.2f}",
                     f"{q.median_synced / base_synced:.2f}", size])
    return rows


def ratios_table(ratios: Sequence[Ratio], by_key: dict[tuple[str, str], Result]) -> str:
    return table(["case", "qa2", "baseline (sum of medians)", "qa2 s", "baseline s",
                  "ratio", "ratio incl. sync", "output size ratio"],
                 ratio_rows(ratios, by_key), right_from=3)
