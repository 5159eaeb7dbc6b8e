"""Project templates: ``qa2 plugin new NAME`` writes ``plugin/`` with NAME filled in."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from qa2core.errors import UsageError

HERE = Path(__file__).resolve().parent / "plugin"


def new_plugin(name: str, dest: Path) -> list[Path]:
    """Write a plugin project for entry point ``name`` into ``dest`` (which must not exist)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise UsageError(f"plugin name {name!r}: use lower-case letters, digits and _ "
                         "(it is the entry point and part of the module name)")
    if dest.exists():
        raise UsageError(f"{dest}: already exists; choose another directory")
    words = {"name": name, "module": f"qa2_{name}", "dist": f"qa2-{name.replace('_', '-')}"}
    written = []
    for src in sorted(p for p in HERE.rglob("*.tmpl")):
        rel = Template(str(src.relative_to(HERE))[:-len(".tmpl")]).substitute(words)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(src.read_text()).substitute(words))
        written.append(out)
    return written
