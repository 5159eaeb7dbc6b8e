"""What a run did (or, with --dry-run, would do): built once, at the end, from frozen records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from qa2core.hooks.model import Finding


class Meter(Protocol):
    """Progress of the write phase; the CLI shows it with rich on a terminal."""

    def start(self, total_bytes: int, entries: int) -> None: ...

    def advance(self, source_bytes: int) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One entry of the package: where it came from, where it went, and how."""

    dest: str  # relative to the member directory (Report.member)
    sources: tuple[str, ...]
    action: str  # readme, fake, empty, copy, reflink, link, gzip, tgz, reused
    bytes: int  # size of the source(s) (docs/contract.md); the README's: its own size
    rule: str
    written: int | None = None  # bytes this run wrote for it (a placeholder: 0); None: dry run

    @property
    def source(self) -> str:
        """One string always: the source, or the directory that holds a tgz's sources."""
        if len(self.sources) == 1:
            return self.sources[0]
        return os.path.commonpath(self.sources) if self.sources else ""

    def to_json(self, member: str) -> dict:
        return {"source": self.source, "sources": list(self.sources), "dest": f"{member}/{self.dest}",
                "action": self.action, "bytes": self.bytes, "written_bytes": self.written,
                "rule": self.rule}


@dataclass(frozen=True)
class Report:
    """The ``--json`` object of ``qa2 package`` and ``qa2 stage``."""

    plugin: str
    style: str
    mode: str
    append: str
    packpath: str
    member: str
    dry_run: bool
    claims: tuple[dict, ...]
    files: tuple[FileRecord, ...]
    skipped: tuple[tuple[str, str], ...]  # (path relative to ORIGPATH, reason)
    unclassified: tuple[str, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...] = ()
    package_bytes: int = 0  # written bytes (copy, hard); the sources' bytes otherwise
    ticket: str = ""
    listing: tuple[str, ...] = ()  # member-relative, as in the README
    errors: tuple[str, ...] = ()
    origpath: str = ""
    space: tuple[int, int] = (0, 0)  # (bytes this run writes at most, bytes free on PACKPATH's fs)

    def left_out(self) -> list[tuple[str, list[str]]]:
        """What stays out, grouped by reason (ORIGPATH-relative paths): nothing goes quietly."""
        groups: dict[str, list[str]] = {}
        for rel, reason in self.skipped:
            groups.setdefault(reason, []).append(rel)
        if self.unclassified:
            groups[f"not recognised by the {self.plugin} plugin"] = list(self.unclassified)
        return sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))

    def left_out_lines(self, cap: int = 10) -> list[str]:
        """The end-of-run summary: a line per reason, then a line per item, capped."""
        groups = self.left_out()
        if not groups:
            return []
        total = sum(len(paths) for _reason, paths in groups)
        lines = [f"left out {total} item(s) of {self.origpath or 'ORIGPATH'} (all of them in --json):"]
        for reason, paths in groups:
            lines.append(f"  {reason} ({len(paths)}):")
            lines += [f"    {p}" for p in paths[:cap]]
            if len(paths) > cap:
                lines.append(f"    ... and {len(paths) - cap} more")
        return lines

    def to_json(self) -> dict:
        return {
            "plugin": self.plugin, "style": self.style, "mode": self.mode,
            "append": self.append, "packpath": self.packpath, "member": self.member,
            "dry_run": self.dry_run, "claims": list(self.claims),
            "files": [f.to_json(self.member) for f in self.files],
            "skipped": [{"source": f"{self.origpath}/{rel}", "reason": r} for rel, r in self.skipped],
            "unclassified": list(self.unclassified),
            "findings": [{"level": str(f.level), "rule": f.rule, "path": f.path,
                          "message": f.message} for f in self.findings],
            "warnings": list(self.warnings), "errors": list(self.errors),
            "package_bytes": self.package_bytes, "ticket": self.ticket, "notes": list(self.notes),
            "listing": list(self.listing),
            "space": {"needed": self.space[0], "free": self.space[1]},
        }
