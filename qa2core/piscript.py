"""What makes a file a scriptForPI (docs/domain.md §8.2 rules 5 and 11): its name, or the CVS
``$Id: scriptForPI.py,v 1.23 …`` line every master copy carries."""

from __future__ import annotations

import re

ID_LINE = re.compile(rb"\$Id: scriptForPI\.py,v ([0-9.]+)")
NAME = re.compile(r"(^|.*\.)scriptForPI([._-][\w.-]*)?\.py$")
HEAD = 8192  # the $Id line sits in the first lines


def version(head: bytes) -> str | None:
    """The master copy's version from its ``$Id`` line, e.g. ``1.23``."""
    m = ID_LINE.search(head[:HEAD])
    return m.group(1).decode() if m else None


def identity(name: str, head: bytes) -> str:
    """'' when ``name``/``head`` make a scriptForPI; otherwise why not, for the message."""
    if NAME.match(name) or version(head):
        return ""
    return (f"{name} is not a scriptForPI: its name is not scriptForPI.py and it has no "
            "'$Id: scriptForPI.py' line")
