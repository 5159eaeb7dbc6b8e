"""``qa2 verify``: the member-prefixed names of Cycle >= 5 deliveries, read from the tree.

A member directory is in today's shape when its README is ``<token>.README.txt``
(qa2core.planning.naming). Then every ``member.<MOUS>.`` or ``member_ouss_id.`` name in it must
carry the directory's own token: real UIDs give ``member.<MOUS>`` names only (no placeholder
token left behind, none of another member), and no file keeps the pipeline's bare ``<MOUS>.``
prefix, which the archive's one-by-one ingestion would not recognise as this member's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from qa2core.hooks.model import UID, Finding, Level
from qa2core.planning import naming
from qa2core.writing import fileops

_TOKEN = re.compile(rf"^(member\.{UID.pattern}|member_ouss(?:_\d+)?_id)\.")
_PLACEHOLDER_DIR = re.compile(r"^member_ouss(?:_\d+)?_id$")


modern = naming.modern


def findings(pack: Path, member: str) -> list[Finding]:
    base = pack / member
    if not modern(fileops.names_in(base)):
        return []
    directory = member.rsplit("/", 1)[-1]
    placeholder = bool(_PLACEHOLDER_DIR.match(directory))
    own = {naming.PLACEHOLDER_TOKEN, directory} if placeholder else {directory}
    mous = "" if placeholder else directory[len("member."):]
    out = []
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), base)
            token = _TOKEN.match(name)
            if token and token.group(1) not in own:
                rule, why = (("names.placeholder", "a placeholder token left in a name once real "
                              "UIDs are given") if token.group(1).startswith("member_ouss")
                             else ("names.member_prefix", "named after another member"))
                out.append(Finding(Level.ERROR, rule, f"{member}/{rel}",
                                   f"{why}: {token.group(1)}, the directory is {directory}"))
            elif mous and name.startswith(mous + "."):
                out.append(Finding(Level.ERROR, "names.member_prefix", f"{member}/{rel}",
                                   f"the pipeline's {mous}. prefix was not renamed to "
                                   f"{directory}. (Cycle >= 5 names)"))
    if not any(_TOKEN.match(n) and n.endswith(".scriptForPI.py")
               for n in fileops.names_in(base / "script")):
        out.append(Finding(Level.WARN, "names.member_prefix", f"{member}/script/",
                           f"no {directory}.scriptForPI.py: Cycle >= 5 deliveries name the PI "
                           "script after the member"))
    return out

