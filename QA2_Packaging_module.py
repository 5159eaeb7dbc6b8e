"""The original CASA-session API, on top of qa2: ``from QA2_Packaging_module import *``.

The calls of the original packager's page work as written. They print what ``qa2 package`` and
``qa2 stage`` print (stderr), return the run's report, and raise a :class:`Qa2Error` subclass
whose message is the CLI's. ``verbose=False`` keeps them quiet.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qa2core import messages
from qa2core.engine import package, stage
from qa2core.errors import Qa2Error
from qa2core.report import Report

__all__ = ["QA_Packager", "QA_Pipeline_Stager", "Qa2Error"]


def _path(value) -> Path | None:
    """A path argument as the CLI gets it (``Path``: './x' reads 'x' in every message); '' is
    "not given", as in the original."""
    return Path(value) if value else None


def _talking(run, verbose: bool, **kwargs) -> Report:
    say = (lambda msg: messages.say(f"qa2: {msg}")) if verbose else None
    try:
        report = run(progress=say, **kwargs)
    except Qa2Error as exc:
        if verbose:
            for line in exc.lines:
                messages.say(f"qa2: error: {line}")
        raise
    if verbose:
        for line in messages.report_lines(report):
            messages.say(line, sys.stderr)
    return report


def QA_Packager(origpath, readme="", packpath="", PIscript="", style="", mode="fake",
                append="", noms=True, verbose=True, ous_uids="", force=False) -> Report:
    """Package the reduction directory ``origpath`` into ``packpath`` (see ``qa2 package``;
    ``ous_uids`` and ``force`` are its ``--ous-uids`` and ``--force``)."""
    # As in the original, a named style decides; noms only speaks when style is ''.
    return _talking(package, verbose, origpath=Path(origpath), packpath=Path(packpath),
                    readme_path=_path(readme), piscript=_path(PIscript), style=style,
                    mode=mode, append=append or "none", noms=None if style else bool(noms),
                    ous_uids=ous_uids or None, force=bool(force))


def QA_Pipeline_Stager(pipeline_root, staged_root, mode="copy", PIscript="", PIPE_README="",
                       verbose=True) -> Report:
    """Stage a pipeline run into a delivery tree (see ``qa2 stage``)."""
    return _talking(stage, verbose, pipeline_root=Path(pipeline_root),
                    staged_root=Path(staged_root), mode=mode, piscript=_path(PIscript),
                    pipe_readme=_path(PIPE_README))
