"""Everything a qa2 plugin, or its tests, needs: ``from qa2core.plugin import ...``.

This module is the plugin author's API, versioned by :data:`API_VERSION` (``major, minor``): a
minor step only adds names or opt-in hook arguments; a major step may remove or change one, and
is announced a release ahead. What is not exported here (scan, plan, build, manager, cli...) is
internal. Plugins written for qa2core 0.2 (``from qa2core import hookimpl, Claim, ...``) keep
working: those names are the same objects.

* hooks: :data:`hookimpl`; the manual is :mod:`qa2core.hooks.hookspecs`;
* results and inputs: ``Claim``, ``Collected``, ``Collection``, ``Placement``, ``Action``,
  ``Finding``, ``Level``, ``Delivery``, ``SourceItem``, ``ItemType``, ``PackageView``,
  ``PackageOptions``, ``Purpose``, ``Mode``, ``OusUids``; scores ``FALLBACK`` ... ``OVERRIDE``;
* composition: ``Contribution`` (``qa2_contribute``); delegation: :func:`delegate`,
  ``Delegate``, :func:`call` (a module's hook with the arguments it takes);
* Cycle >= 5 names: :func:`member_file`, :func:`rename_dest` (``<MOUS>.x`` -> the member
  token ``PackageOptions.member_token`` gives), :func:`readme_of`;
* styles: ``Style``, ``STYLES``, :func:`resolve_style`; errors: ``Qa2Error``, ``PluginFailed``,
  ``NotDetected``, ``AmbiguousDelivery``, ``ValidationFailed``, ``UsageError``;
* for tests (need ``qa2core[testing]``, imported on first use): :func:`check_plugin`,
  ``write_tree``, ``tree_state``, ``files_below``, ``Qa2Result``, ``plugin_manager``.
"""

from __future__ import annotations

from typing import Any

from qa2core import hookimpl
from qa2core.errors import (
    AmbiguousDelivery,
    NotDetected,
    PluginFailed,
    Qa2Error,
    UsageError,
    ValidationFailed,
)
from qa2core.hooks.compose import Contribution, Delegate, call, delegate
from qa2core.hooks.model import (
    FALLBACK,
    GENERIC,
    MEMBER_DIRS,
    OVERRIDE,
    SPECIFIC,
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
from qa2core.planning.naming import member_file, readme_of, rename_dest
from qa2core.planning.ous import OusUids
from qa2core.planning.styles import STYLES, Style, resolve_style

API_VERSION = (1, 1)
"""(major, minor) of this module. 1.0 (qa2core 0.2.x): composition, delegation, the plugin check.
1.1: Cycle >= 5 names (``PackageOptions.member_token``, ``Claim.style``, ``Action.REWRITE`` with
``Placement.renames``; :func:`member_file`, :func:`rename_dest`, :func:`readme_of`)."""

_TESTING = ("check_plugin", "write_tree", "tree_state", "files_below", "Qa2Result", "plugin_manager")


def __getattr__(name: str) -> Any:  # the testing helpers load pytest: only when asked for
    if name in _TESTING:
        import qa2core.testing as testing

        return getattr(testing, name)
    raise AttributeError(f"module 'qa2core.plugin' has no attribute {name!r}")


__all__ = [
    "API_VERSION", "FALLBACK", "GENERIC", "MEMBER_DIRS", "OVERRIDE", "SPECIFIC", "STYLES", "UNCLASSIFIED",
    "Action", "AmbiguousDelivery", "Claim", "Collected", "Collection", "Contribution", "Delegate",
    "Delivery", "Finding", "ItemType", "Level", "Mode", "NotDetected", "OusUids", "PackageOptions",
    "PackageView", "Placement", "PluginFailed", "Purpose", "Qa2Error", "SourceItem", "Style",
    "UsageError", "ValidationFailed", "call", "delegate", "hookimpl", "member_file", "readme_of",
    "rename_dest", "resolve_style", *_TESTING,
]
