"""The original CASA-session API, on top of qa2: ``from QA2_Packaging_module import *``.

Same behaviour as ``qa2 package`` / ``qa2 stage``; problems raise :class:`Qa2Error` (a
``RuntimeError``-like exception whose message names the path or value and the rule).
"""

from __future__ import annotations

from qa2core.engine import package
from qa2core.errors import Qa2Error
from qa2core.report import Report

__all__ = ["QA_Packager", "QA_Pipeline_Stager", "Qa2Error"]


def QA_Packager(origpath, readme, packpath, PIscript="", style="", mode="fake",
                append="", noms=True) -> Report:
    """Package the reduction directory ``origpath`` into ``packpath`` (see ``qa2 package``)."""
    # As in the original, a named style decides; noms only speaks when style is ''.
    return package(origpath, packpath, readme_path=readme or None, piscript=PIscript or None,
                   style=style, mode=mode, append=append or "none",
                   noms=None if style else bool(noms))


def QA_Pipeline_Stager(pipeline_root, staged_root, mode="copy", PIscript="",
                       PIPE_README=""):
    """Stage a pipeline run into a delivery tree (see ``qa2 stage``)."""
    from qa2core.engine import stage

    return stage(pipeline_root, staged_root, mode=mode, piscript=PIscript or None,
                 pipe_readme=PIPE_README or None)
