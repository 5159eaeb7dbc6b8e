"""qa2: the ALMA QA2 packager as a small plugin host.

The plugin author's API: :mod:`qa2core.plugin` exports all of it from one place, versioned
(``qa2core.plugin.API_VERSION``). The names below stay importable as in 0.2:

* ``qa2core`` itself: ``hookimpl``, the model types below, the claim scores.
* :mod:`qa2core.hookspecs` - the hooks, their arguments and their contracts (the manual).
* :mod:`qa2core.model` - what hooks take and return (frozen dataclasses, enums).
* :mod:`qa2core.styles` - the style table; :mod:`qa2core.ous` - ``OusUids``.
* :mod:`qa2core.rules`, :mod:`qa2core.layouts`, :mod:`qa2core.compression` - building blocks
  for name-rule tables and manual-reduction layouts.
* :mod:`qa2core.testing` - pytest fixtures and sample data (extra ``qa2core[testing]``).

The engine's API for programs: :mod:`qa2core.engine` (``package``, ``stage``, ``detect``,
``inspect``), :mod:`qa2core.verify`, :mod:`qa2core.archive`, :mod:`QA2_Packaging_module`.

Everything else (scan, plan, build, execute, fileops, journal, manifest, lock, report, cli) is
internal and may change between releases.
"""

from __future__ import annotations

import pluggy

from qa2core.model import (
    FALLBACK,
    GENERIC,
    MEMBER_DIRS,
    OVERRIDE,
    SPECIFIC,
    UID,
    UNCLASSIFIED,
    Action,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    ItemType,
    Level,
    Mode,
    PackageOptions,
    PackageView,
    Placement,
    Purpose,
    SourceItem,
)
from qa2core.styles import STYLES, Style

__version__ = "0.2.0"
PROJECT = "qa2"

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for plugin hook implementations: ``@hookimpl def qa2_detect(delivery): ...``."""


def __getattr__(name: str):  # composition and delegation, loaded on first use (no import cycle)
    if name in ("Contribution", "delegate", "Delegate"):
        from qa2core import compose

        return getattr(compose, name)
    raise AttributeError(f"module 'qa2core' has no attribute {name!r}")

__all__ = [
    "FALLBACK",
    "GENERIC",
    "MEMBER_DIRS",
    "OVERRIDE",
    "PROJECT",
    "SPECIFIC",
    "STYLES",
    "UID",
    "UNCLASSIFIED",
    "Action",
    "Claim",
    "Collected",
    "Collection",
    "Delivery",
    "Finding",
    "ItemType",
    "Level",
    "Mode",
    "PackageOptions",
    "PackageView",
    "Placement",
    "Purpose",
    "SourceItem",
    "Style",
    "__version__",
    "hookimpl",
]
