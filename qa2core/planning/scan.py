"""Scan a reduction directory into SourceItems: names, item types, sizes. Read-only, one pass.

A casacore table is a directory holding ``table.dat``; its type is line 1 of ``table.info``
(docs/casa-and-io.md §2). Tables, ASDMs and ``*.flagversions`` directories are single items: their
contents are walked once, for their size and newest mtime. Every directory is listed once, by
(device, inode), and the walk is iterative: nesting depth is limited only by the file system.

Symbolic links follow one set of rules, inside tables and out (qa2core.planning.walk, docs/contract.md
"Symbolic links in ORIGPATH"): a link resolving inside ORIGPATH counts as what it points to (a
second path to a directory shows what its one listing found); links leaving ORIGPATH, loops,
FIFOs, sockets and devices refuse the run, every one of them named, before anything is written
(docs/reliability.md); a broken link holds no data and is left out with a warning.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from qa2core.errors import Qa2Error
from qa2core.hooks.model import ItemType, SourceItem
from qa2core.planning.walk import (
    Dir,
    File,
    Leaf,
    Node,
    Walker,
    lstat_checked,
    path_order,
    tree_fingerprint,
    walk_tree,
)

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


def _raw_link(entry: os.DirEntry, top: str) -> str:
    """The target of a link leaving ORIGPATH to an ASDM directory, else ''. Reducers link the
    raw data from a shared area; no style delivers an ASDM, so it is left out, not refused."""
    if not entry.is_symlink():
        return ""
    target = os.path.realpath(entry.path)
    if target == top or target.startswith(top.rstrip("/") + "/"):
        return ""
    return target if os.path.isfile(os.path.join(target, "ASDM.xml")) else ""


def scan(root: Path) -> tuple[tuple[SourceItem, ...], tuple[str, ...]]:
    """Items under ``root`` sorted by path, and warnings. Refuses (Qa2Error listing every
    problem) when the input holds links leaving it, loops or special files."""
    items: list[SourceItem] = []
    problems: list[str] = []
    warnings: list[str] = []
    top = os.path.realpath(root)

    def read(path: str, name: str, listing: list[os.DirEntry], is_top: bool) -> Leaf | list[Node]:
        kind = None if is_top else _dir_item_type(name, listing)
        if kind is not None:  # one item: its contents walked once, for size and newest mtime
            ttype, subtype = read_table_info(path) if kind is ItemType.TABLE else ("", "")
            size, mtime = tree_fingerprint(walk_tree(path, top, problems, warnings,
                                                     entries=listing))
            return Leaf((kind, size, ttype, subtype, mtime))
        nodes: list[Node] = []
        for entry in listing:
            if entry.name in _IGNORED or entry.name.startswith("."):
                continue
            raw = _raw_link(entry, top)
            if raw:  # an ASDM linked from the shared raw area: named, never walked nor read
                raw_links[entry.path] = raw
                nodes.append(File(entry.name, entry.stat(follow_symlinks=False)))
                continue
            st = lstat_checked(entry.path, top, problems, warnings)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                nodes.append(Dir(entry.name, st, entry.is_symlink()))
            elif not os.access(entry.path, os.R_OK):
                problems.append(f"{entry.path}: source file is not readable (permission denied)")
            else:
                if entry.is_symlink():
                    links.add(entry.path)
                nodes.append(File(entry.name, st))
        return nodes

    def on_leaf(rel: str, payload) -> None:
        kind, size, ttype, subtype, mtime = payload
        items.append(SourceItem(rel, kind, size, ttype, subtype, mtime))

    links: set[str] = set()  # paths of file links (scandir knows it: no extra lstat)
    files: dict[tuple[int, int], str] = {}  # inode -> the first path that is not a link
    linked: list[tuple[int, tuple[int, int]]] = []  # (index in items, inode) of file links

    raw_links: dict[str, str] = {}

    def on_file(rel: str, path: str, st: os.stat_result) -> None:
        if path in raw_links:
            items.append(SourceItem(rel, ItemType.ASDM, 0, outside=raw_links[path]))
            return
        key = (st.st_dev, st.st_ino)
        if path in links or key in files:  # a file link, or a file seen again through a
            linked.append((len(items), key))  # directory link: the first real path is the file
        else:
            files[key] = rel
        items.append(SourceItem(rel, ItemType.FILE, st.st_size, mtime_ns=st.st_mtime_ns))

    Walker(read, problems, warnings, on_leaf=on_leaf, on_file=on_file).run(str(root))
    if problems:
        raise Qa2Error(f"{root}: {len(problems)} problem(s) in ORIGPATH", lines=tuple(problems))
    for index, key in linked:  # a link to a file that is itself scanned is that file
        if key in files:
            items[index] = replace(items[index], link_of=files[key])
    items.sort(key=lambda i: path_order(i.relpath))
    return tuple(items), tuple(warnings)
