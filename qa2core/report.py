"""What a packaging run did (or, with --dry-run, would do): the ``--json`` object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from qa2core.model import Finding


class Meter(Protocol):
    """Progress of the write phase; the CLI shows it with rich on a terminal."""

    def start(self, total_bytes: int, entries: int) -> None: ...

    def advance(self, source_bytes: int) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Report:
    """What a run did (or, with dry_run, would do); ``to_json`` is the ``--json`` object."""

    plugin: str
    style: str
    mode: str
    append: str
    packpath: str
    member: str = ""
    dry_run: bool = False
    claims: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    package_bytes: int = 0
    ticket: str = ""
    notes: list[str] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)  # member-relative, as in the README

    def to_json(self) -> dict:
        return {
            "plugin": self.plugin, "style": self.style, "mode": self.mode,
            "append": self.append, "packpath": self.packpath, "member": self.member,
            "dry_run": self.dry_run, "claims": self.claims, "files": self.files,
            "skipped": self.skipped, "unclassified": self.unclassified,
            "findings": [f.__dict__ | {"level": str(f.level)} for f in self.findings],
            "warnings": self.warnings, "errors": self.errors,
            "package_bytes": self.package_bytes, "ticket": self.ticket, "notes": self.notes,
            "listing": self.listing,
        }
