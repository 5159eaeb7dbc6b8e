"""The ticket zip for the SCOPS Data Reduction ticket: README, scripts, QA reports, and the
expected size of the package (original page: "the README, the qa2 files, the scripts, and the
expected size"). Paths inside are relative to the member directory; content is read from the
sources, so ticket mode (fake tree) gets the same zip as copy mode. A name is stored as the
README lists it (:func:`qa2core.writing.readme.visible`): a zip holds Unicode names, so bytes that are
not UTF-8 (and newlines, backslashes, control characters) become visible escapes.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

from qa2core.hooks.model import Action
from qa2core.planning.plan import Plan
from qa2core.writing.readme import visible

# qa/ material worth reading inline in JIRA; archives (weblogs) stay out of the ticket.
QA_SUFFIXES = (".txt", ".pdf", ".png", ".jpg", ".html", ".htm", ".log", ".csv", ".json")
STORED = (".png", ".jpg", ".pdf")  # already compressed: deflating them again only costs time
SIZE_FILE = "package_size.txt"
# A ticket is read in JIRA: thousands of plots help nobody, and zipping them costs minutes.
MAX_QA_FILES = 200
MAX_QA_BYTES = 20 * 2**20


def size_statement(project: str, member: str, size: int, nfiles: int, measured: bool) -> str:
    how = ("measured on the written package" if measured else
           "sum of the source sizes; images that the package compresses are counted "
           "uncompressed, so this is an upper bound")
    return (f"Project: {project}\nMember: {member}\n"
            f"Expected size of the package: {size} bytes ({size / 2**30:.2f} GiB) "
            f"in {nfiles} files\n({how})\n")


def ticket_members(plan: Plan) -> tuple[list[tuple[str, Path]], int]:
    """(name in zip, source) for the scripts and the first QA reports, and how many QA
    reports were left out by the MAX_QA_* caps."""
    out, qa_files, qa_bytes, left_out = [], 0, 0, 0
    for f in plan.files:
        if f.action is not Action.COPY or f.whole_dir or not f.sources:
            continue
        top = f.dest.split("/", 1)[0]
        if top == "qa" and f.dest.lower().endswith(QA_SUFFIXES):
            if qa_files >= MAX_QA_FILES or qa_bytes + f.bytes > MAX_QA_BYTES:
                left_out += 1
                continue
            qa_files, qa_bytes = qa_files + 1, qa_bytes + f.bytes
        elif top != "script":
            continue
        out.append((visible(f.dest), f.sources[0]))
    return out, left_out


def _entry(name: str, stamp_ns: int) -> zipfile.ZipInfo:
    """A made entry dated by the newest source, never the clock: two identical runs give the
    same zip, byte for byte (zip dates start in 1980)."""
    when = time.gmtime(max(stamp_ns // 1_000_000_000, 315532800))[:6]
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write(path: Path, readme: bytes, plan: Plan, statement: str, stamp_ns: int = 0) -> None:
    members, left_out = ticket_members(plan)
    if left_out:
        statement += (f"{left_out} QA report file(s) are in the package but not in this ticket "
                      f"(the ticket keeps {MAX_QA_FILES} files, {MAX_QA_BYTES // 2**20} MiB).\n")
    with zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_entry(plan.readme, stamp_ns), readme)
        for name, source in members:
            kind = zipfile.ZIP_STORED if name.lower().endswith(STORED) else zipfile.ZIP_DEFLATED
            zf.write(source, name, compress_type=kind)
        zf.writestr(_entry(SIZE_FILE, stamp_ns), statement)
