"""``manifest-sha256.txt``: sha256sum format, paths relative to PACKPATH, every file.

``cd PACKPATH && sha256sum -c manifest-sha256.txt`` checks a package with standard tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from qa2core import fileops
from qa2core.errors import Qa2Error

NAME = "manifest-sha256.txt"


def format_lines(entries: Iterable[tuple[str, str]]) -> str:
    """``entries`` = (relative path, sha256); sorted by path, two spaces as sha256sum writes."""
    return "".join(f"{sha}  {path}\n" for path, sha in sorted(entries))


def safe_relpath(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\\" not in path


def read(packpath: Path) -> dict[str, str]:
    """Path -> sha256 from PACKPATH's manifest; a bad line raises naming the line."""
    manifest = packpath / NAME
    entries: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        sha, sep, path = line.partition("  ")
        path = path.removeprefix("*")
        if not sep or len(sha) != 64 or not safe_relpath(path):
            raise Qa2Error(f"{manifest}:{number}: bad manifest line {line!r} (want '<sha256>  "
                           "<relative path>' with no '..' and no leading '/')")
        entries[path] = sha
    return entries


def hash_tree(packpath: Path, top: str) -> dict[str, str]:
    """Hash every file below ``packpath/top`` (used when an old package had no manifest)."""
    cut = len(str(packpath)) + 1
    return {path[cut:]: fileops.hash_file(path)
            for path, _st in fileops.iter_package_files(str(packpath / top))}


def write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
