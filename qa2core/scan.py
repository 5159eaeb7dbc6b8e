"""Scan a reduction directory into SourceItems: names, item types, sizes. Read-only, one pass.

A casacore table is a directory holding ``table.dat``; its type is line 1 of ``table.info``
(docs/casa-and-io.md §2). Tables, ASDMs and ``*.flagversions`` directories are single items: their
contents are walked once, for their size and newest mtime. Every directory is listed once.

Symbolic links that resolve inside ORIGPATH count as what they point to (reducers link files
around); links that leave ORIGPATH, broken links, loops, FIFOs, sockets and devices refuse the
run, every one of them named, before anything is written (docs/reliability.md).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from qa2core.errors import Qa2Error
from qa2core.fileops import lstat_checked, tree_fingerprint, walk_tree
from qa2core.model import ItemType, SourceItem

# Names never worth a look: editor and interpreter droppings.
_IGNORED = frozenset({"__pycache__", ".ipynb_checkpoints", ".DS_Store"})


def read_table_info(path: str) -> tuple[str, str]:
    """``(Type, SubType)`` from a table's ``table.info``; blanks when missing (old tables)."""
    try:
        with open(os.path.join(path, "table.info"), "rb") as fh:
            head = fh.read(4096).decode(errors="replace")
    except OSError:
        return "", ""
    values = [line.split("=", 1)[1].strip() if "=" in line else ""
              for line in head.splitlines()[:2]]
    values += [""] * (2 - len(values))
    return values[0], values[1]


def _dir_item_type(name: str, children: list[os.DirEntry]) -> ItemType | None:
    names = {c.name for c in children}
    if "table.dat" in names:
        return ItemType.TABLE
    if "ASDM.xml" in names:
        return ItemType.ASDM
    if name.endswith(".flagversions") and "FLAG_VERSION_LIST" in names:
        return ItemType.FLAGVERSIONS
    return None


def _listing(path: str, problems: list[str]) -> list[os.DirEntry] | None:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(f"{path}: cannot list directory ({exc.strerror})")
        return None


def scan(root: Path) -> tuple[tuple[SourceItem, ...], tuple[str, ...]]:
    """Items under ``root`` sorted by path, and warnings. Refuses (Qa2Error listing every
    problem) when the input holds links leaving it, loops or special files."""
    items: list[SourceItem] = []
    problems: list[str] = []
    warnings: list[str] = []
    top = os.path.realpath(root)

    def walk(directory: str, rel: str, children: list[os.DirEntry],
             ancestors: frozenset[tuple[int, int]]) -> None:
        for entry in children:
            name = entry.name
            if name in _IGNORED or name.startswith("."):
                continue
            path, relpath = entry.path, rel + name
            st = lstat_checked(path, top, problems, warnings)
            if st is None:
                continue
            if stat.S_ISREG(st.st_mode):
                if not os.access(path, os.R_OK):
                    problems.append(f"{path}: source file is not readable (permission denied)")
                    continue
                items.append(SourceItem(relpath, ItemType.FILE, st.st_size, mtime_ns=st.st_mtime_ns))
                continue
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                problems.append(f"{path}: symbolic link loop (points back to a parent directory)")
                continue
            listing = _listing(path, problems)
            if listing is None:
                continue
            kind = _dir_item_type(name, listing)
            if kind is None:
                walk(path, relpath + "/", listing, ancestors | {key})
                continue
            ttype, subtype = read_table_info(path) if kind is ItemType.TABLE else ("", "")
            size, mtime = tree_fingerprint(walk_tree(path, top, problems))
            items.append(SourceItem(relpath, kind, size, ttype, subtype, mtime))

    root_st = os.stat(root)
    listing = _listing(str(root), problems) or []
    walk(str(root), "", listing, frozenset({(root_st.st_dev, root_st.st_ino)}))
    if problems:
        raise Qa2Error(f"{root}: {len(problems)} problem(s) in ORIGPATH", lines=tuple(problems))
    return tuple(items), tuple(warnings)
