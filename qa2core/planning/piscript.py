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


MAX_BYTES = 4 << 20  # a scriptForPI is a few hundred kB of Python; anything bigger is not one


def content_problem(data: bytes) -> str:
    """'' when ``data`` is a Python script; otherwise why not. The master copies of Cycles 0-4
    are Python 2 (CASA 4-5), so a script that Python 3 cannot compile passes when it carries
    the master copy's ``$Id`` line; random or binary bytes never do."""
    if not data.strip():
        return "it is empty"
    if b"\0" in data:
        return "it holds NUL bytes: a binary file, not a Python script"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 text (byte {exc.start}): not a Python script"
    if version(data):
        return ""
    try:
        compile(text, "scriptForPI.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return (f"it is not Python (line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)})"
                " and has no '$Id: scriptForPI.py' line")
    return ""
