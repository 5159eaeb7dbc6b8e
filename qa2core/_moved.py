"""Old module paths keep working: ``qa2core.model`` is ``qa2core.hooks.model``, and so on.

qa2core 0.2 kept every module at the top of the package, and plugins written then import them
there (``from qa2core.styles import resolve_style``, ``from qa2core import tgzcheck``). The
modules now live in folders by stage; this finder answers an old name with the module at its new
place, the same object, so attributes, monkeypatches and ``isinstance`` all agree.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "hooks": ("builtin", "compose", "hookcheck", "hookspecs", "manager", "model"),
    "planning": ("compression", "layouts", "ous", "paths", "piscript", "plan", "requests", "rules",
                 "scan", "styles", "walk"),
    "writing": ("archive", "build", "execute", "export", "fileops", "journal", "lock", "manifest",
                "readme", "ticket"),
    "checks": ("content", "tgzcheck", "verify"),
    "data": ("casaenv", "facts", "images"),
}
NEW_NAME = {f"qa2core.{old}": f"qa2core.{folder}.{old}" for folder, olds in MOVED.items() for old in olds}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._specs: dict = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in NEW_NAME:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(NEW_NAME[spec.name])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # The module already ran at its new place; importlib files it under the old name too
        # (sys.modules, the parent's attribute) but first points its __spec__ at the alias:
        # put the real one back.
        module.__spec__ = self._specs.pop(module.__spec__.name)


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
