"""Packaging styles as a table: one row per style, one named switch per behaviour.

Plugins read the switches; nobody branches on a style's name. Adding ``cycle5-pipe`` is one new
row. Sources: the original packager page (styles cycle0…cycle3), JAO pkgPipe (cycle4-pipe), the
2022 page revision (cycle7/8-nopipe); see docs/layout-rules.md for the inferred switches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qa2core.errors import UsageError


@dataclass(frozen=True)
class Style:
    name: str
    cycle: int
    noms: bool = True  # False: calibrated measurement sets go to calibrated/ (Cycle 0)
    pipeline: bool = False  # the package holds pipeline products (staged via qa2 stage)
    accepts_imagingprep: bool = True  # scriptForImagingPrep.py is a recognised script
    accepts_antennapos: bool = False  # pipeline antennapos.csv goes to calibration/
    strip_oussid_prefix: bool = True  # <oussid>.casa_pipescript.py -> casa_pipescript.py
    compress_pb_mask: bool = True  # .pb/.flux/.mask images gzipped or tarred (since 2015-12)
    needs_piscript: bool = True  # scriptForPI.py is mandatory (it exists since Cycle 1)
    description: str = ""


_ROWS: tuple[Style, ...] = (
    Style("cycle0-nopipe", 0, noms=False, accepts_imagingprep=False, needs_piscript=False,
          description="Cycle 0 (2011.0.*) manual reductions: calibrated MSs ship in calibrated/"),
    Style("cycle1-nopipe", 1, accepts_imagingprep=False,
          description="Cycle 1 (2012.1.*) manual reductions"),
    Style("cycle2-nopipe", 2, accepts_imagingprep=False,
          description="Cycle 2 (2013.1.*) manual reductions"),
    Style("cycle2-pipe1", 2, pipeline=True, accepts_imagingprep=False,
          description="Cycle 2 pipeline runs, staged with qa2 stage first"),
    Style("cycle3-nopipe", 3, description="Cycle 3 (2015.1.*) manual reductions; also Cycle 4-6 manual ones"),
    Style("cycle3-pipe1", 3, pipeline=True, accepts_antennapos=True,
          description="Cycle 3 pipeline runs (with antennapos.csv), staged first"),
    Style("cycle4-pipe", 4, pipeline=True, accepts_antennapos=True,
          description="Cycle 4 and later pipeline runs (JAO pkgPipe), staged first"),
    Style("cycle7-nopipe", 7, description="Cycle 7 (2019.1.*) manual reductions"),
    Style("cycle8-nopipe", 8, description="Cycle 8 (2021.1.*) and later manual reductions"),
)

STYLES: dict[str, Style] = {row.name: row for row in _ROWS}

# style "" means: ignore styles, let --noms/--ms decide (the original's default).
_FOLLOW_NOMS = Style("", 3, description="no style: --noms (default) or --ms decides; any data")


def resolve_style(name: str, noms: bool | None = None) -> Style:
    """Return the style row for ``name``; ``noms`` (when given) overrides the row's switch."""
    name = name.strip()
    if name and name not in STYLES:
        valid = ", ".join(['""', *STYLES])
        raise UsageError(f"unknown style {name!r}; valid styles: {valid}")
    style = STYLES.get(name, _FOLLOW_NOMS)
    if noms is None or noms == style.noms:
        return style
    # --ms turns on calibrated/ and drops the PI-script requirement, as Cycle 0 had none.
    return replace(style, noms=noms, needs_piscript=noms and style.needs_piscript)


def all_styles() -> tuple[Style, ...]:
    return (_FOLLOW_NOMS, *_ROWS)
