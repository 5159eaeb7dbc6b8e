"""``manifest-sha256.txt``: sha256sum format, paths relative to PACKPATH, every file.

``cd PACKPATH && sha256sum -c manifest-sha256.txt`` checks a package with standard tools.

Any file name works, escaped as GNU coreutils (9.x) ``sha256sum`` does: a name holding a
backslash, a newline or a carriage return is written with ``\\\\``, ``\\n``, ``\\r`` and the line
starts with a backslash (``\\<sha256>  a\\nb``); every other name is written as is. Names are
``str`` as ``os`` returns them, so bytes that are not UTF-8 arrive as surrogate escapes
(``\\udce9``): the file is encoded with ``surrogateescape`` and holds the name's original bytes,
as ``sha256sum`` would write them. Use :func:`encode` / :func:`write_atomic` to write it.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from qa2core.errors import Qa2Error
from qa2core.writing import fileops

NAME = "manifest-sha256.txt"
ENCODING, ERRORS = "utf-8", "surrogateescape"  # a name's bytes, whatever they are

_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})
_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r"}
_HEX = frozenset(string.hexdigits)


def format_line(path: str, sha: str) -> str:
    """One line as ``sha256sum`` prints it, escaped (leading backslash) when the name needs it."""
    escaped = path.translate(_ESCAPE)
    return f"{sha}  {path}\n" if escaped == path else f"\\{sha}  {escaped}\n"


def format_lines(entries: Iterable[tuple[str, str]]) -> str:
    """``entries`` = (relative path, sha256); sorted by path, two spaces as sha256sum writes.

    The text may hold surrogate escapes (names that are not UTF-8): :func:`encode` it."""
    return "".join(format_line(path, sha) for path, sha in sorted(entries))


def encode(text: str) -> bytes:
    """The manifest's bytes: every name with its original bytes."""
    return text.encode(ENCODING, ERRORS)


def safe_relpath(path: str) -> bool:
    """Relative, below PACKPATH: no empty name, no leading ``/``, no ``..``, no NUL."""
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\0" not in path


def _unescape(name: str) -> str | None:
    out, chars = [], iter(name)
    for ch in chars:
        if ch == "\\":
            ch = _UNESCAPE.get(next(chars, ""))
            if ch is None:
                return None
        out.append(ch)
    return "".join(out)


def parse_line(line: str) -> tuple[str, str] | None:
    """(path, sha256) of one line (without its newline), or ``None`` when it is malformed.

    As ``sha256sum -c`` reads it: ``<sha256> <space or *><name>``; a leading backslash means
    the name is escaped (``\\\\``, ``\\n``, ``\\r``)."""
    escaped = line.startswith("\\")
    if escaped:
        line = line[1:]
    sha, sep, path = line[:64], line[64:66], line[66:]
    if len(sha) != 64 or not _HEX.issuperset(sha) or sep not in ("  ", " *"):
        return None
    if escaped:
        path = _unescape(path)
    if path is None or not safe_relpath(path):
        return None
    return path, sha.lower()


def read(packpath: Path) -> dict[str, str]:
    """Path -> sha256 from PACKPATH's manifest; a bad line raises naming the line."""
    manifest = packpath / NAME
    text = manifest.read_bytes().decode(ENCODING, ERRORS)
    lines = text.split("\n")  # only "\n" ends a line (not str.splitlines' \r, \x0c, \x85, ...)
    if lines[-1] == "":
        lines.pop()
    entries: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        parsed = parse_line(line)
        if parsed is None:
            raise Qa2Error(f"{manifest}:{number}: bad manifest line {line!r} (want "
                           "'<sha256>  <relative path>' with no '..' and no leading '/', or "
                           "'\\<sha256>  <escaped path>')")
        if parsed[0] in first:  # sha256sum -c checks both lines: one of them must fail
            raise Qa2Error(f"{manifest}:{number}: {parsed[0]!r} is listed again (first on line "
                           f"{first[parsed[0]]}): a manifest names each file exactly once")
        first[parsed[0]] = number
        entries[parsed[0]] = parsed[1]
    return entries


def hash_tree(packpath: Path, top: str) -> dict[str, str]:
    """Hash every file below ``packpath/top`` (used when an old package had no manifest)."""
    cut = len(str(packpath)) + 1
    return {path[cut:]: fileops.hash_file(path)
            for path, _st in fileops.iter_package_files(str(packpath / top))}


def write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    fileops.write_durable(str(tmp), encode(text))
    os.replace(tmp, target)
    fileops.fsync_dir(str(target.parent))
