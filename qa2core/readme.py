"""README = the reducer's header, byte for byte, then the member directory as packaged."""

from __future__ import annotations

RULE = b"#####"
LISTING_INTRO = (b"Contents of this member directory as packaged by qa2 (raw/ is added by the "
                 b"ASDM tarballs):")


def tree_listing(top: str, paths: list[str]) -> str:
    """An ASCII ``tree`` of member-relative ``paths``: directories first, then files, sorted.

    A path ending in ``/`` is a directory shipped whole (a CASA table): one line, not its files.
    """
    tree: dict = {}
    for path in paths:
        node = tree
        parts = path.rstrip("/").split("/")
        for part in parts[:-1]:
            node = node.setdefault(part + "/", {})
        leaf = parts[-1] + ("/" if path.endswith("/") else "")
        node.setdefault(leaf, {} if leaf.endswith("/") else None)

    lines = [top.rstrip("/") + "/"]

    def walk(node: dict, prefix: str) -> None:
        names = sorted(node, key=lambda n: (not n.endswith("/"), n))
        for i, name in enumerate(names):
            last = i == len(names) - 1
            lines.append(f"{prefix}{'`-- ' if last else '|-- '}{name}")
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
