"""README = the reducer's header, byte for byte, then the member directory as packaged."""

from __future__ import annotations

import re
import unicodedata

RULE = b"#####"
LISTING_INTRO = (b"Contents of this member directory as packaged by qa2 (raw/ is added by the "
                 b"ASDM tarballs):")


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
    tree: dict = {}
    for path in paths:
        node = tree
        parts = path.rstrip("/").split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        leaf = parts[-1] + ("/" if path.endswith("/") else "")
        node.setdefault(leaf, {} if leaf.endswith("/") else None)

    lines = [visible(top.rstrip("/")) + "/"]

    def walk(node: dict, prefix: str) -> None:
        names = sorted(node, key=lambda n: (not n.endswith("/"), n))
        for i, name in enumerate(names):
            last = i == len(names) - 1
            lines.append(f"{prefix}{'`-- ' if last else '|-- '}{visible(name)}")
            if node[name]:
                walk(node[name], prefix + ("    " if last else "|   "))

    walk(tree, "")
    return "\n".join(lines) + "\n"


def assemble(header: bytes, top: str, paths: list[str]) -> bytes:
    """Header unchanged, a separator, then the listing (generated after compression)."""
    sep = b"" if not header or header.endswith(b"\n") else b"\n"
    listing = tree_listing(top, paths).encode()
    intro = b"\n" + RULE + b"\n" + LISTING_INTRO + b"\n\n"
    return header + sep + intro + listing


def header_project_code(data: bytes) -> str | None:
    """The ``Project code:`` of a README header (docs/domain.md §7), or ``None``."""
    m = re.search(rb"^\s*Project code:\s*(\S+)", header_of(data), re.MULTILINE)
    return m.group(1).decode(errors="replace") if m else None


def header_of(data: bytes) -> bytes:
    """The reducer's header of a packaged README: everything before qa2's listing."""
    cut = data.find(b"\n" + RULE + b"\n" + LISTING_INTRO)
    return data if cut < 0 else data[:cut]
