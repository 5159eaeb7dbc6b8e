"""README = the reducer's header, byte for byte, then the member directory as packaged; for a
Cycle >= 5 style (issue 22) qa2's HOW TO / DATA CATEGORIES / FILES sections come between the
two (qa2core.writing.modern_readme), and the file is ``<member token>.README.txt``."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from qa2core.planning import naming
from qa2core.writing.modern_readme import BY_QA2, TITLE, Modern, modern_sections

RULE = b"#####"
LISTING_INTRO = (b"Contents of this member directory as packaged by qa2 (raw/ is added by the "
                 b"ASDM tarballs):")
_INTRO = b"\n" + RULE + b"\n" + LISTING_INTRO + b"\n\n"
# The first lines of qa2's modern block (modern_readme.modern_sections): the title, its rule,
# and a line saying qa2 wrote it, so an ALMA README quoted in a reducer's header is not taken
# for it.
_BLOCK = re.compile(rb"\n" + re.escape(TITLE.encode()) + rb"\n=+\n[^\n]*" + re.escape(BY_QA2.encode()))
_TARS = rb"_(NNN_of_MMM\.tar|auxiliary\.tar)"


readme_name = naming.readme_name  # README, or <token>.README.txt since Cycle 5


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (os's surrogate escape)
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):  # controls, line separators
        return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"
    return ch


def visible(name: str) -> str:
    """``name`` on one line, printable: a backslash is ``\\\\``; newline, carriage return and tab
    are ``\\n``, ``\\r``, ``\\t``; other control characters ``\\x1b``; a byte that is not UTF-8
    ``\\xe9``; a line or paragraph separator ``\\u2028``. Any other name is returned unchanged."""
    if name.isprintable() and "\\" not in name:
        return name
    return "".join(_escape(ch) for ch in name)


def tree_listing(top: str, paths: list[str]) -> str:
    """An ASCII ``tree`` of member-relative ``paths``: directories first, then files, sorted.

    A path ending in ``/`` is a directory shipped whole (a CASA table): one line, not its files.
    Names are shown with :func:`visible`, so each file is one line whatever its name.
    """
    return visible(top.rstrip("/")) + "/\n" + _tree_body(tuple(paths))


@functools.lru_cache(maxsize=2)
def _tree_body(paths: tuple[str, ...]) -> str:
    """The listing below its top line: built once per run, though the README and the
    command's output both show it (200,000 QA plots make it seconds of work)."""
    tree: dict = {}
    for path in paths:
        node = tree
        parts = path.rstrip("/").split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        leaf = parts[-1] + ("/" if path.endswith("/") else "")
        node.setdefault(leaf, {} if leaf.endswith("/") else None)

    lines: list[str] = []

    def walk(node: dict, prefix: str) -> None:
        names = sorted(node, key=lambda n: (not n.endswith("/"), n))
        for i, name in enumerate(names):
            last = i == len(names) - 1
            lines.append(f"{prefix}{'`-- ' if last else '|-- '}{visible(name)}")
            if node[name]:
                walk(node[name], prefix + ("    " if last else "|   "))

    walk(tree, "")
    del tree  # 200,000 names: free the tree before the text is made
    lines.append("")
    return "\n".join(lines)


def assemble(header: bytes, top: str, paths: Sequence[str], modern: Modern | None = None) -> bytes:
    """Header unchanged, a separator, then the listing (generated after compression). With
    ``modern`` (a Cycle >= 5 style) the HOW TO, DATA CATEGORIES and FILES sections of ``paths``
    come between the header and the listing."""
    sep = b"" if not header or header.endswith(b"\n") else b"\n"
    block = b"" if modern is None else b"\n" + modern_sections(paths, modern)
    # joined once: the listing of 200,000 files is 12 MB, each extra copy as much again
    return b"".join((header, sep, block, _INTRO, tree_listing(top, list(paths)).encode()))


def renamed(data: bytes, old: str, new: str) -> bytes:
    """A packaged README whose listing starts at member directory ``old``, starting at ``new``
    instead (``qa2 tar --ous-uids`` renames the chain). Header and the rest unchanged; a README
    without qa2's listing (a staged tree's) or starting elsewhere is returned as it is.

    A modern README (qa2's sections before the listing) names the member token in its file
    names too: there every ``old`` in the sections and the listing becomes ``new``, and the tar
    names ``<project>_<old's MOUS>_…`` become ``<project>_<new's MOUS>_…`` (the MOUS of
    ``member.uid___X`` is ``uid___X``; a placeholder ``member_ouss_id`` is its own)."""
    cut = data.rfind(_INTRO)
    old, new = visible(old.rstrip("/")), visible(new.rstrip("/"))
    top = (old + "/\n").encode()
    if cut < 0 or not data.startswith(top, cut + len(_INTRO)):
        return data
    start = cut + len(_INTRO)
    block = list(_BLOCK.finditer(data, 0, cut))
    if not block:
        return data[:start] + (new + "/\n").encode() + data[start + len(top):]
    head = block[-1].start()
    was, now = (token.encode() for token in (old, new))
    tars = re.sub(rb"_" + re.escape(_mous(was)) + _TARS, lambda m: b"_" + _mous(now) + b"_" + m.group(1),
                  data[head:start])
    return data[:head] + tars.replace(was, now) + data[start:].replace(was, now)


def _mous(token: bytes) -> bytes:
    return token.removeprefix(b"member.")


def header_project_code(data: bytes) -> str | None:
    """The ``Project code:`` of a README header (docs/domain.md §7), or ``None``."""
    m = re.search(rb"^\s*Project code:\s*(\S+)", header_of(data), re.MULTILINE)
    return m.group(1).decode(errors="replace") if m else None


def header_of(data: bytes) -> bytes:
    """The reducer's header of a packaged README: everything before qa2's modern sections or
    its listing, whichever comes first."""
    block = _BLOCK.search(data)
    cuts = [cut for cut in (data.find(b"\n" + RULE + b"\n" + LISTING_INTRO),
                            block.start() if block else -1) if cut >= 0]
    return data[:min(cuts)] if cuts else data


# ---------------------------------------------------------------------------- header template

FILL = "<fill in>"  # a field the template could not fill: verify flags headers that keep one
_PPR_NAMES = re.compile(r"^(PPR.*\.xml|.*pprequest\.xml)$")
_LOG_VERSION = re.compile(rb"CASA Version (\d+\.\d+\.\d+)")
_SCRIPT_VERSION = re.compile(rb"re\.search\(\s*['\"]\^?(\d+\.\d+(?:\.\d+)?)['\"]\s*,\s*casadef\.casa_version"
                             rb"|THE SCRIPT: (\d+\.\d+(?:\.\d+)?)")
_CYCLES = {2011: 0, 2012: 1, 2013: 2, 2015: 3, 2016: 4, 2017: 5, 2018: 6, 2019: 7}


def _tag(data: bytes, name: str) -> str:
    m = re.search(rb"<(?:\w+:)?" + name.encode() + rb"\b[^>]*>\s*([^<]*?)\s*<", data)
    return m.group(1).decode(errors="replace") if m else ""


def cycle_of(project: str) -> int | None:
    """The ALMA cycle of a project code (2017.1.* is Cycle 5, 2023.1.* Cycle 10), or None."""
    year = int(project[:4]) if project[:4].isdigit() else 0
    return _CYCLES.get(year, year - 2013 if year >= 2021 else None)


def _cycle(project: str) -> str:
    cycle = cycle_of(project)
    return str(cycle) if cycle is not None else FILL


def _head(path: str, size: int) -> bytes:
    from qa2core.errors import Qa2Error
    from qa2core.writing.fileops import open_source

    try:
        fd = open_source(path)
    except (OSError, Qa2Error):
        return b""
    with open(fd, "rb") as fh:
        return fh.read(size)


def template_header(root, items, pack_name: str, mous: str = "") -> tuple[bytes, list[str]]:
    """A Cycle-3-style README header (docs/domain.md §7.2) with what qa2 can read: the project
    code (PACKPATH's name, else the PPR's), its cycle, the SB name (PPR), the MOUS (``mous``
    from --ous-uids, else the PPR, else a measurement set's ASDM_EXECBLOCK), the number of EBs
    (PPR, else the EB names of ASDMs, MSs and calibration scripts), the CASA version (the
    first lines of ``casa-*.log``, else the scripts' version checks) and the date of the
    reduction's newest file (a clock date would make two runs differ). The rest reads
    ``<fill in>``. Returns the header and the names of the fields left to fill in."""
    import os
    from datetime import datetime, timezone

    from qa2core.hooks.model import UID, ItemType
    from qa2core.planning.ous import PROJECT_CODE

    items = tuple(items)
    ppr = next((_head(os.path.join(root, i.relpath), 4 << 20) for i in items
                if i.type is ItemType.FILE and _PPR_NAMES.match(i.name)), b"")
    project = pack_name if PROJECT_CODE.match(pack_name) else _tag(ppr, "ProposalCode")
    ous = re.search(rb"<(?:\w+:)?OUSStatusRef\b[^>]*entityId=\"([^\"]+)\"", ppr)
    mous = mous or (ous.group(1).decode() if ous else "") or _mous_from_data(root, items)
    asdms = re.findall(rb"<(?:\w+:)?AsdmDiskName\b[^>]*>\s*([^<]*?)\s*<", ppr)
    ebs = {a.decode(errors="replace") for a in asdms if a} or {
        m.group(0) for i in items if _eb_evidence(i) for m in [UID.search(i.name)] if m}
    logs = [i for i in items if i.type is ItemType.FILE and i.name.startswith("casa-")
            and i.name.endswith(".log")]
    scripts = [i for i in items if i.type is ItemType.FILE and "scriptFor" in i.name
               and i.name.endswith(".py")]
    versions = _versions(root, logs, _LOG_VERSION) or _versions(root, scripts, _SCRIPT_VERSION)
    newest = max((i.mtime_ns for i in items), default=0)
    date = datetime.fromtimestamp(newest / 1e9, tz=timezone.utc).strftime("%Y-%m-%d")
    fields = [
        ("Cycle", _cycle(project) if project else FILL), ("Project code", project or FILL),
        ("SB name", _tag(ppr, "SBTitle") or FILL), ("PI name", FILL), ("Project title", FILL),
        ("Configuration", FILL), ("Proposed rms", FILL), ("Proposed beam size", FILL),
        ("CASA version used for reduction", ", ".join(versions) or FILL),
        ("QA2 Result", FILL), ("Total Number of Member SBs in this OUS Group", FILL),
        ("Member OUS", mous.replace("uid___", "uid://").replace("_", "/") if mous else FILL),
        ("Number of execution blocks", str(len(ebs)) if ebs else FILL),
        ("Date", f"{date} (the newest file of the reduction)"),
    ]
    text = "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\n"
    text += "".join(f"{key}: {value}\n" for key, value in fields)
    text += "Comments from Reducer:\n#####\n"
    return text.encode(), [key for key, value in fields if value == FILL]


def _versions(root, items, pattern: re.Pattern[bytes]) -> list[str]:
    import os

    versions: list[str] = []
    for i in items:
        found = pattern.search(_head(os.path.join(root, i.relpath), 16 << 10))
        version = next(g for g in found.groups() if g).decode() if found else ""
        if version and version not in versions:
            versions.append(version)
    return versions


def _eb_evidence(item) -> bool:
    from qa2core.hooks.model import ItemType

    name = item.name
    if item.type is ItemType.ASDM:
        return True
    if item.type is ItemType.TABLE:
        return item.table_type == "Measurement Set"
    return ".ms.scriptFor" in name and "Calibration" in name and name.endswith(".py")


def _mous_from_data(root, items) -> str:
    """The MOUS a measurement set's ASDM_EXECBLOCK names (casatools; "" without it)."""
    from qa2core.data import facts
    from qa2core.hooks.model import ItemType

    sets = [i for i in items if i.type is ItemType.TABLE and i.table_type == "Measurement Set"]
    for item in sets[:8]:
        mous = facts.facts(root, item).mous
        if mous:
            return mous
    return ""


def unfilled(header: bytes) -> bool:
    """The header still holds template fields to fill in."""
    return FILL.encode() in header
