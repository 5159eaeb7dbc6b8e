"""Builders for ``qa2 selftest`` and ``make demo``.

The ``selftest`` command in :mod:`qa2core.cli` imports this module inside the command only, so
the runtime packager never needs the ``qa2core[testing]`` extra (casatools, casadata, pytest).
"""

from __future__ import annotations

from pathlib import Path

from qa2core.testing.sampledata import Sample, build_manual_reduction

__all__ = ["Sample", "build_demo"]


def build_demo(workdir: Path) -> Sample:
    """The sample used by ``make demo`` / ``qa2 selftest``: ``<workdir>/reduction``.

    The README header and scriptForPI.py are written next to it, in ``workdir``.
    """
    return build_manual_reduction(Path(workdir) / "reduction")
