"""What a person reads: the same lines on stderr from the ``qa2`` command and from the CASA
session API (``QA2_Packaging_module``). No Typer here.

Every line starts ``qa2: <level>: `` once; a problem reads ``<path>: <what> [rule]``.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from qa2core.hooks.model import Finding, Level

# One stderr line per message, whatever the names in it: control characters and bytes that
# are not UTF-8 (os's surrogate escapes) are shown as escapes, as the README listing does.
_ESCAPES = ({c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
            | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
            | {c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
WORD = {Level.ERROR: "error", Level.WARN: "warning", Level.INFO: "info"}


def write(text: str, stream: TextIO | None = None, end: str = "\n") -> None:
    """``print``, but a character the stream cannot encode (a lone surrogate on a strict UTF-8
    stream) is written as a backslash escape instead of raising."""
    stream = stream or sys.stdout
    try:
        print(text, file=stream, end=end)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream, end=end)


def say(line: str, stream: TextIO | None = None) -> None:
    """One line on stderr, escaped so that it stays one line."""
    write(line.translate(_ESCAPES), stream or sys.stderr)


def finding(f: Finding) -> str:
    return f"qa2: {WORD[f.level]}: {f.text()}"


def report_lines(report: Any, summary: bool = True) -> list[str]:
    """After a package or stage run: notes, warnings, what the user must act on, what was
    left out, and the one-line summary."""
    lines = [f"qa2: note: {n}" for n in report.notes]
    lines += [f"qa2: warning: {w}" for w in report.warnings]
    lines += [finding(f) for f in report.findings if f.level is Level.INFO]
    lines += [f"qa2: {line}" for line in report.left_out_lines()]
    if not summary:
        return lines
    verb = "would write" if report.dry_run else "wrote"
    where = f"{report.packpath.rstrip('/')}/{report.member}"
    # The same count as the "writing N entries (S source bytes)" line: the planned entries and
    # their sources' bytes; the README, which qa2 makes, comes on top. Bytes written (after
    # compression, README included) are said apart.
    entries = [f for f in report.files if f.action != "readme"]
    source = sum(f.bytes for f in entries)
    if report.mode in ("fake", "ticket"):
        what = (f"{len(entries)} entries as empty placeholders (names only, no data; "
                f"{source} bytes of source not copied) and the README")
    elif report.dry_run:
        what = f"{len(entries)} entries ({source} source bytes) and the README"
    else:
        what = (f"{len(entries)} entries ({source} source bytes) and the README; "
                f"{report.package_bytes} bytes written")
    lines.append(f"qa2: {report.plugin} {verb} {what}, mode {report.mode}, to {where}")
    if report.ticket:
        lines.append(f"qa2: ticket: {report.ticket}")
    return lines


_HOW = {"copy": "copy", "reflink": "copy", "link": "link", "reused": "link", "gzip": "compress",
        "tgz": "compress", "export": "compress"}


def plan_lines(report: Any) -> list[str]:
    """``--dry-run``: each destination grouped by directory, with its source(s), action, bytes
    and rule; then the totals and the free space."""
    lines = [f"qa2: plan for {report.packpath.rstrip('/')}/{report.member} (mode {report.mode}; "
             f"sources relative to {report.origpath}):"]
    cut = len(report.origpath) + 1
    by_dir: dict[str, list[Any]] = {}
    for f in report.files:
        by_dir.setdefault(f.dest.rpartition("/")[0], []).append(f)
    totals = {"copy": 0, "link": 0, "compress": 0}
    for directory in sorted(by_dir):
        lines.append(f"qa2:   {directory or '.'}/")
        for f in by_dir[directory]:
            shown = [src[cut:] if src.startswith(report.origpath + "/") else src
                     for src in f.sources]
            sources = (", ".join(shown) if len(shown) < 4
                       else f"{len(shown)} sources in {f.source[cut:] or '.'}")
            lines.append(f"qa2:     {f.dest.rpartition('/')[2]}  <- {sources or '(generated)'}  "
                         f"{f.action}  {f.bytes} B  [{f.rule}]")
            if f.action in _HOW:
                totals[_HOW[f.action]] += f.bytes
    needed, free = report.space
    lines.append(f"qa2: totals: copy {totals['copy']} B, link {totals['link']} B, compress "
                 f"{totals['compress']} B; needs about {needed} B, {free} B free on PACKPATH's "
                 "file system" + ("" if needed <= free else ": NOT ENOUGH SPACE"))
    return lines
