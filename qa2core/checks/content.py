"""What certifies a delivery: its bytes, never its bookkeeping (docs/reliability.md).

A manifest, a journal or an mtime can be written by anybody; these checks read the package
itself. A rehearsal (fake, ticket) is a tree of empty placeholders: it stays uncertifiable with
its bookkeeping deleted and a manifest written by hand, because its files are empty where a
delivery's never are. The same test tells ``qa2 package --append`` whether the units already in
PACKPATH are a rehearsal.
"""

from __future__ import annotations

import stat

from qa2core.hooks.model import MEMBER_DIRS
from qa2core.planning.walk import iter_package_files

# A file of these kinds is never empty in a delivery: an empty one is a rehearsal's placeholder
# (or a copy that lost its bytes). Text tables (*.txt, *.csv, *.log) may be empty for real:
# the pipeline writes empty flag templates.
NEVER_EMPTY = (".fits", ".fits.gz", ".gz", ".tgz", ".tar", ".zip", ".py", ".pdf", ".png",
               ".jpg", ".jpeg", ".html", ".htm", ".xml")
# Empty by design in real deliveries: JAO's pkgPipe ships an empty scriptForImaging.py with
# pipeline-imaged data (the pipeline plugin's Action.EMPTY placement; docs/layout-rules.md).
EMPTY_BY_DESIGN = frozenset({"script/scriptForImaging.py"})


def placeholders(member_dir: str, limit: int = 10) -> list[str]:
    """Up to ``limit`` member-relative names that show a rehearsal: empty files of a kind that
    is never empty, and empty directories standing for a CASA table or an ASDM (a rehearsal
    makes ``X.ms/`` empty; a real one holds ``table.dat``)."""
    out: list[str] = []
    cut = len(member_dir) + 1
    for path, st in iter_package_files(member_dir, empty_dirs=True):
        rel, name = path[cut:], path.rsplit("/", 1)[-1]
        if stat.S_ISDIR(st.st_mode):
            if rel not in MEMBER_DIRS and "." in name:
                out.append(rel + "/")
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0 and rel not in EMPTY_BY_DESIGN and \
                name.lower().endswith(NEVER_EMPTY):
            out.append(rel)
        if len(out) >= limit:
            break
    return out


def is_rehearsal(member_dir: str) -> bool:
    return bool(placeholders(member_dir, limit=1))
