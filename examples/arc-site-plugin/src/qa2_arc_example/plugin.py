"""An ARC's site plugin: the interferometric plugin, extended by delegation, plus a site note.

A reduction that holds ``ARC_SITE.txt`` at its top is packaged exactly as the interferometric
plugin packages it, with one addition: the marker file ships as ``qa/arc_site_note.txt``.
Every hook hands the work to the wrapped plugin first and changes only what the site needs, so
the built-in's rules (and their fixes in later releases) come along. The rules of delegation
(docs/plugin-authoring.md, "Extending a built-in plugin"):

1. claim at OVERRIDE, and only on your own marker, and only when the wrapped plugin claims too;
2. pass the wrapped plugin's ``Claim.context`` through, unchanged, to its other hooks;
3. call its ``qa2_collect`` and ``qa2_layout``, then add or change your own items;
4. run its ``qa2_validate`` rules: the core calls only the packaging plugin's (yours), so a
   wrapper that skips them loses every ERROR rule of the wrapped plugin;
5. delegate ``qa2_ous_uids`` and copy the module flags (``QA2_STAGES``) of the wrapped plugin.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

# Import the wrapped plugin as a module, never its functions: a hook implementation imported
# into this module under its own name would be registered as this plugin's hook.
from qa2_interferometric import plugin as base

from qa2core import (
    OVERRIDE,
    Action,
    Claim,
    Collected,
    Collection,
    Delivery,
    Finding,
    Level,
    PackageView,
    Placement,
    Purpose,
    hookimpl,
)
from qa2core.ous import OusUids

MARKER = "ARC_SITE.txt"  # at the top of the reduction: "package this the ARC's way"
NOTE = "qa/arc_site_note.txt"  # where the marker ships, member-relative
KIND = "arc_site_note"  # this plugin's word for the marker, between collect and layout

# The module flags of the wrapped plugin are this plugin's too (QA2_STAGES: qa2 stage takes
# its inputs). The interferometric plugin sets none; a wrapper of the pipeline plugin would stage.
QA2_STAGES = getattr(base, "QA2_STAGES", False) is True


def _delegate(hook: str, **kwargs: Any) -> Any:
    """Call the wrapped plugin's ``hook`` with the arguments it takes (pluggy's opt-in
    arguments, as the core calls it); ``None`` when it does not implement the hook."""
    impl = getattr(base, hook, None)
    if impl is None:
        return None
    wanted = inspect.signature(impl).parameters
    return impl(**{name: value for name, value in kwargs.items() if name in wanted})


def _marked(delivery: Delivery) -> bool:
    """The marker at the top of a reduction; in ``qa2 verify`` (a package on disk, where the
    marker has become the note) the note in a member's ``qa/``."""
    if delivery.options.purpose is Purpose.VERIFY:
        return any(item.relpath.endswith(f"/{NOTE}") for item in delivery.items)
    return any(item.relpath == MARKER for item in delivery.items)


@hookimpl
def qa2_detect(delivery: Delivery) -> Claim | None:
    """OVERRIDE on the marker, when the interferometric plugin claims the input too: the marker
    is decisive evidence of this site's input, and must beat that plugin's SPECIFIC claim."""
    if not _marked(delivery):
        return None
    inner = _delegate("qa2_detect", delivery=delivery)
    if inner is None:  # a marker beside a pipeline run, a TP reduction...: not ours to package
        return None
    return Claim(OVERRIDE, f"ARC site marker {MARKER}, over: {inner.reason}",
                 (MARKER, *inner.evidence[:4]), inner.context)


@hookimpl
def qa2_collect(delivery: Delivery, context: Any) -> Collection:
    """The wrapped plugin's verdicts (and findings), with the marker as this plugin's kind."""
    got = _delegate("qa2_collect", delivery=delivery, context=context)
    items, findings = ((got.items, got.findings) if isinstance(got, Collection)
                       else (tuple(got), ()))
    mine = [Collected(item, KIND) for item in delivery.items if item.relpath == MARKER]
    items = tuple(c for c in items if c.item.relpath != MARKER) + tuple(mine)
    return Collection(items, tuple(findings))


@hookimpl
def qa2_layout(delivery: Delivery, collected: Sequence[Collected], context: Any) -> list[Placement]:
    """The wrapped plugin places its items; the marker ships as the site note. The core copies
    it: a plugin never writes."""
    theirs = [c for c in collected if c.kind != KIND]
    placements = list(_delegate("qa2_layout", delivery=delivery, collected=theirs,
                                context=context))
    placements += [Placement(NOTE, Action.COPY, (c.item.relpath,), "arc.site_note")
                   for c in collected if c.kind == KIND]
    return placements


@hookimpl
def qa2_ous_uids(delivery: Delivery, context: Any) -> OusUids | None:
    """``--ous-uids auto``: whatever the wrapped plugin says (the interferometric plugin has
    no such hook, so ``None``: manual reductions name no OUS)."""
    return _delegate("qa2_ous_uids", delivery=delivery, context=context)


@hookimpl
def qa2_validate(view: PackageView, context: Any, plugin: str) -> list[Finding]:
    """The wrapped plugin's rules first (scriptForPI's needs: ERRORs among them), then the
    site's: a package of this plugin holds a non-empty site note."""
    findings = list(_delegate("qa2_validate", view=view, context=context, plugin=plugin) or ())
    if NOTE not in view.files:
        findings.append(Finding(Level.ERROR, "arc.site_note", NOTE,
                                f"no site note: it is {MARKER} of the reduction, shipped here"))
        return findings
    stream = view.open(NOTE)  # None where content is not at hand (fake packages)
    if stream is not None:
        with stream:
            text = stream.read(4096)
        if not text.strip():
            findings.append(Finding(Level.ERROR, "arc.site_note", NOTE,
                                    f"the site note is empty: write the ARC and the reducer's "
                                    f"contact in {MARKER}"))
    return findings
