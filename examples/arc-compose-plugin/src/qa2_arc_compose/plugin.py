"""Two qa/ files and one JSON rule, added to whatever package wins (composition, not wrapping)."""

import json

from qa2core.plugin import Contribution, Finding, Level, Placement, hookimpl

MARKER, REPORT = "ARC_SITE.txt", "arc_qa.json"  # at the top of the reduction
FILES = {MARKER: "qa/arc_site_note.txt", REPORT: "qa/arc_qa.json"}


@hookimpl
def qa2_contribute(delivery):
    mine = [item.relpath for item in delivery.items if item.relpath in FILES]
    if MARKER not in mine:  # not this site's reduction: add nothing
        return None
    return Contribution([Placement(FILES[rel], sources=(rel,), rule="arc.qa") for rel in mine])


@hookimpl
def qa2_validate(view):  # runs on every package: it checks its own file when it is there
    stream = view.open(FILES[REPORT]) if FILES[REPORT] in view.files else None
    if stream is None:
        return None
    with stream:
        try:
            json.load(stream)
        except ValueError as exc:
            return [Finding(Level.ERROR, "arc.qa_json", FILES[REPORT], f"not valid JSON: {exc}")]
    return None
