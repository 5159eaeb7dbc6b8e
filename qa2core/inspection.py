"""``qa2 inspect``: every item of ORIGPATH, its kind, the facts read from its data and its fate.

The same scan, detection, rules and plan as ``qa2 package`` (qa2core.engine), but a plan that
package would refuse is shown whole, its problems marked on the items they concern.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from qa2core.data import casaenv, facts
from qa2core.engine import _account, _claim_json, load_delivery
from qa2core.errors import Qa2Error
from qa2core.hooks.manager import Qa2Plugins, get_plugin_manager
from qa2core.hooks.model import UNCLASSIFIED, Delivery, Level, Placement
from qa2core.planning import naming
from qa2core.planning.plan import make_plan


def inspect(origpath: Path | str, plugins: Qa2Plugins | None = None, style: str = "") -> dict:
    """What qa2 sees in ORIGPATH (``qa2 inspect``): for every item its kind, the facts read
    from its data (qa2core.data.facts) and its fate under ``style``: destination, action and the rule
    that chose it, or why it stays out. Tables are read through mirrors in a temporary
    directory, removed before returning; the source is never written."""
    import tempfile

    plugins = plugins or get_plugin_manager()
    plugins.require_healthy()
    delivery = load_delivery(origpath, style)
    decision = plugins.choose(delivery)
    if delivery.style.member_prefix:  # the names the package would have: UIDs from the input
        uids = plugins.ous_uids(decision.plugin, delivery, decision.context)
        delivery = replace(delivery, options=replace(delivery.options,
                                                     member_token=naming.token(uids)))
    collection = plugins.collect(decision.plugin, delivery, decision.context)
    accounting = _account(delivery, collection)
    placements = plugins.layout(decision.plugin, delivery, accounting.packable, decision.context)
    fates, problems = _fates(delivery, placements)
    kinds = {c.item.relpath: c for c in collection.items}
    skipped = dict(accounting.skipped) | {rel: "" for rel in accounting.unclassified}
    base = os.path.commonpath([i.relpath for i in delivery.items]) if len(delivery.items) > 1 else ""
    base = base if base and not any(i.relpath == base for i in delivery.items) else ""
    items = []
    with tempfile.TemporaryDirectory(prefix="qa2-inspect-") as tmp, facts.scratch(tmp):
        for item in delivery.items:
            c = kinds.get(item.relpath)
            fate = fates.get(item.relpath) or [{"dest": "", "action": "skip", "rule": ""}]
            items.append({
                "relpath": item.relpath, "shown": item.relpath[len(base) + 1:] if base else item.relpath,
                "type": str(item.type), "size": item.size, "table_type": item.table_type,
                "kind": c.kind if c else UNCLASSIFIED, "skip": skipped.get(item.relpath, ""),
                "fate": fate, "facts": (got := facts.facts(delivery.root, item)).to_json(),
                "facts_line": got.summary()})
    casaenv.drain()  # shown per item, in its facts' notes
    return {"plugin": decision.plugin, "style": delivery.style.name,
            "claims": [_claim_json(r) for r in decision.ranked], "base": base,
            "casatools": casaenv.version() if casaenv.tools() else f"none: {casaenv.reason()}",
            "items": items,
            "findings": [{"level": str(f.level), "rule": f.rule, "path": f.path,
                          "message": f.message} for f in collection.findings],
            "errors": [*problems, *(f.text() for f in collection.findings
                                    if f.level is Level.ERROR)]}


def _fates(delivery: Delivery, placements: list[Placement]) -> tuple[dict[str, list[dict]],
                                                                      list[str]]:
    """Each item's destinations (relpath -> fates) and the plan's problems. A plan that
    package would refuse (two sources for one destination, a bad destination) still gives
    every item its fate: the placements in trouble carry a ``problem``, the rest are planned
    as usual, so inspect shows the whole picture and marks what is wrong."""
    try:
        planned, problems, troubled = make_plan(delivery.root, delivery.items, placements).files, [], []
    except Qa2Error as refused:
        problems = list(refused.lines)
        by_rel = {i.relpath: i for i in delivery.items}
        by_dest: dict[str, list[Placement]] = {}
        for p in placements:
            by_dest.setdefault(p.dest, []).append(p)
        planned, troubled = [], []
        for group in by_dest.values():
            if len(group) > 1:  # the clash: every source of the destination is marked
                others = [", ".join(p.sources) or p.rule for p in group]
                troubled += [(p, f"two sources for one destination: {' and '.join(others)} "
                                 "[plan.clash]") for p in group]
                continue
            p = group[0]
            try:  # alone, with only its own items: what it lacks is its own problem
                planned += make_plan(delivery.root, [by_rel[s] for s in p.sources if s in by_rel],
                                     [p]).files
            except Qa2Error as exc:
                troubled.append((p, exc.lines[0]))
    fates: dict[str, list[dict]] = {}
    for f in planned:
        action = "copy/link" if f.linkable else str(f.action)  # hard mode links it
        for item in f.items:
            fates.setdefault(item.relpath, []).append({"dest": f.dest, "action": action,
                                                       "rule": f.rule})
    for p, problem in troubled:
        for rel in p.sources:
            fates.setdefault(rel, []).append({"dest": p.dest, "action": str(p.action),
                                              "rule": p.rule, "problem": problem})
    return fates, problems
