"""The ticket zip for the SCOPS Data Reduction ticket: README, scripts, QA reports, and the
expected size of the package (original page: "the README, the qa2 files, the scripts, and the
expected size"). Paths inside are relative to the member directory; content is read from the
sources, so ticket mode (fake tree) gets the same zip as copy mode.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from qa2core.model import Action
from qa2core.plan import Plan

# qa/ material worth reading inline in JIRA; archives (weblogs) stay out of the ticket.
QA_SUFFIXES = (".txt", ".pdf", ".png", ".jpg", ".html", ".htm", ".log", ".csv", ".json")
SIZE_FILE = "package_size.txt"


def size_statement(project: str, member: str, size: int, nfiles: int, measured: bool) -> str:
    how = ("measured on the written package" if measured else
           "sum of the source sizes; images that the package compresses are counted "
           "uncompressed, so this is an upper bound")
    return (f"Project: {project}\nMember: {member}\n"
            f"Expected size of the package: {size} bytes ({size / 2**30:.2f} GiB) "
            f"in {nfiles} files\n({how})\n")


def ticket_members(plan: Plan) -> list[tuple[str, Path]]:
    """(name in zip, source) for scripts and QA reports."""
    out = []
    for f in plan.files:
        if f.action is not Action.COPY or f.whole_dir or not f.sources:
            continue
        top = f.dest.split("/", 1)[0]
        if top == "script" or (top == "qa" and f.dest.lower().endswith(QA_SUFFIXES)):
            out.append((f.dest, f.sources[0]))
    return out


def write(path: Path, readme: bytes, plan: Plan, statement: str) -> None:
    with zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README", readme)
        for name, source in ticket_members(plan):
            zf.write(source, name)
        zf.writestr(SIZE_FILE, statement)
