"""qa2: the ALMA QA2 packager as a small plugin host.

Plugins import everything they need from here::

    from qa2core import hookimpl, Claim, Collected, Placement, Finding
"""

from __future__ import annotations

import pluggy

from qa2core.model import (
    FALLBACK,
    GENERIC,
    MEMBER_DIRS,
    OVERRIDE,
    SPECIFIC,
    UNCLASSIFIED,
    Action,
    Claim,
    Collected,
    Delivery,
    Finding,
    ItemType,
    Level,
    PackageOptions,
    PackageView,
    Placement,
    SourceItem,
)
from qa2core.styles import STYLES, Style

__version__ = "0.1.0"
PROJECT = "qa2"

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for plugin hook implementations: ``@hookimpl def qa2_detect(delivery): ...``."""

__all__ = [
    "FALLBACK",
    "GENERIC",
    "MEMBER_DIRS",
    "OVERRIDE",
    "PROJECT",
    "SPECIFIC",
    "STYLES",
    "UNCLASSIFIED",
    "Action",
    "Claim",
    "Collected",
    "Delivery",
    "Finding",
    "ItemType",
    "Level",
    "PackageOptions",
    "PackageView",
    "Placement",
    "SourceItem",
    "Style",
    "__version__",
    "hookimpl",
]
