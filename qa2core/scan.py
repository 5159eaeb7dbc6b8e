"""Scan a reduction directory into SourceItems: names, item types, sizes. Read-only.

A casacore table is a directory holding ``table.dat``; its type is line 1 of ``table.info``
(casacore TableInfo). Tables, ASDMs and ``*.flagversions`` directories are single items: the
scanner does not descend into them. Symbolic links are followed (reducers link raw data in),
with loops detected by (device, inode) along the current path.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from qa2core.errors import Qa2Error
from qa2core.fileops import VOLATILE
from qa2core.model import ItemType, SourceItem

# Names never worth a look: editor and interpreter droppings, table locks.
_IGNORED = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}


def read_table_info(path: Path) -> tuple[str, str]:
    """``(Type, SubType)`` from a table's ``table.info``; blanks when missing (old tables)."""
    try:
        lines = (path / "table.info").read_text(errors="replace").splitlines()
    except OSError:
        return "", ""
    values = [line.split("=", 1)[1].strip() if "=" in line else "" for line in lines[:2]]
    values += [""] * (2 - len(values))
    return values[0], values[1]


def _dir_item_type(path: Path, entries: set[str]) -> ItemType | None:
    if "table.dat" in entries:
        return ItemType.TABLE
    if "ASDM.xml" in entries:
        return ItemType.ASDM
    if path.name.endswith(".flagversions") and "FLAG_VERSION_LIST" in entries:
        return ItemType.FLAGVERSIONS
    return None


def tree_stat(path: Path) -> tuple[int, int]:
    """(bytes, newest mtime_ns) of the regular files below ``path`` (links followed, as the
    copy will); casacore lock files are left out, as the package leaves them out."""
    total = newest = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=True):
        for name in files:
            if name in VOLATILE:
                continue
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError as exc:
                raise Qa2Error(f"{os.path.join(dirpath, name)}: cannot read ({exc.strerror})") from exc
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
    return total, newest


def scan(root: Path) -> tuple[tuple[SourceItem, ...], tuple[str, ...]]:
    """Items under ``root`` sorted by path, and warnings (broken links, special files)."""
    items: list[SourceItem] = []
    warnings: list[str] = []

    def walk(directory: Path, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise Qa2Error(f"{directory}: cannot list directory ({exc.strerror})") from exc
        for entry in entries:
            if entry.name in _IGNORED or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            relpath = f"{rel}{entry.name}"
            try:
                st = os.stat(path)  # follows links
            except FileNotFoundError:
                warnings.append(f"{path}: broken symbolic link, skipped")
                continue
            except OSError as exc:
                if exc.errno == 40:  # ELOOP: a link that points at itself
                    raise Qa2Error(f"{path}: symbolic link loop; fix or remove the link") from exc
                raise Qa2Error(f"{path}: cannot read ({exc.strerror})") from exc
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    raise Qa2Error(f"{path}: symbolic link loop (points back to a parent "
                                   "directory); fix or remove the link")
                kind = _dir_item_type(path, set(os.listdir(path)))
                if kind is None:
                    walk(path, relpath + "/", ancestors | {key})
                    continue
                ttype, subtype = read_table_info(path) if kind is ItemType.TABLE else ("", "")
                size, mtime = tree_stat(path)
                items.append(SourceItem(relpath, kind, size, ttype, subtype, mtime))
            elif stat.S_ISREG(st.st_mode):
                if not os.access(path, os.R_OK):
                    raise Qa2Error(f"{path}: source file is not readable (permission denied)")
                items.append(SourceItem(relpath, ItemType.FILE, st.st_size, mtime_ns=st.st_mtime_ns))
            else:
                warnings.append(f"{path}: not a regular file or directory, skipped")

    top = os.stat(root)
    walk(root, "", frozenset({(top.st_dev, top.st_ino)}))
    return tuple(items), tuple(warnings)
