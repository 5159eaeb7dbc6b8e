"""qa2: the ALMA QA2 packager as a small plugin host.

The plugin author's API: :mod:`qa2core.plugin` exports all of it from one place, versioned
(``qa2core.plugin.API_VERSION``). ``qa2core`` itself still exports ``hookimpl``, the model types
and the claim scores, as in 0.2.

The package is laid out by stage (docs/architecture.md):

* :mod:`qa2core.hooks` - the hook specifications (the manual), the model, the plugin manager;
* :mod:`qa2core.planning` - request, walk, scan, name rules, styles, layouts, the plan;
* :mod:`qa2core.writing` - execute, build and swap, journal, manifest, README, ticket, tar;
* :mod:`qa2core.checks` - verify, content rules, tgz checks;
* :mod:`qa2core.data` - FITS and CASA facts; :mod:`qa2core.batch` - many jobs;
* :mod:`qa2core.engine` - ``package``, ``stage``, ``detect``, ``inspect`` for programs;
  :mod:`qa2core.cli` - the ``qa2`` command; :mod:`qa2core.testing` - fixtures and sample data.

Modules of 0.2 keep their old import paths (``qa2core.styles``, ``qa2core.model``, ...): see
:mod:`qa2core._moved`.
"""

from __future__ import annotations

import pluggy

from qa2core import _moved
from qa2core.hooks.model import (
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
from qa2core.planning.styles import STYLES, Style

_moved.install()

__version__ = "0.2.0"
PROJECT = "qa2"

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for plugin hook implementations: ``@hookimpl def qa2_detect(delivery): ...``."""


def __getattr__(name: str):  # composition and delegation, loaded on first use (no import cycle)
    if name in ("Contribution", "delegate", "Delegate"):
        from qa2core.hooks import compose

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
