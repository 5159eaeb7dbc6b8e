"""Packaging styles as a table: one row per style, one named switch per behaviour.

Plugins read the switches; nobody branches on a style's name. Adding ``cycle5-pipe`` is one new
row. Sources: the original packager page (styles cycle0…cycle3), JAO pkgPipe (cycle4-pipe), the
2022 page revision (cycle7/8-nopipe), Cycle >= 5 deliveries as the archive holds them
(cycle5-*, cycle10-*); docs/layout-rules.md gives each row's source and the inferred switches.
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
    # Cycle >= 5 deliveries (docs/layout-rules.md, "Cycle 5 and later"):
    # member.<MOUS>.README.txt, .scriptForPI.py, <MOUS>. files renamed; qa2 tar of such a member
    # writes FITS product volumes and <proj>_<MOUS>_auxiliary.tar (S14: the same Cycle 5 change)
    member_prefix: bool = False
    readme_sections: bool = False  # README with HOW TO / DATA CATEGORIES / FILES
    unique_selfcal: bool = False  # at most one *selfcal.json (scriptForPI v2.5, Cycle 10 on)
    description: str = ""
    source: str = ""  # where the row's behaviour comes from (docs/domain.md sources)


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
    # Cycle 5 on: files ingested one by one, named after the member; product and auxiliary tars
    Style("cycle5-pipe", 5, pipeline=True, accepts_antennapos=True, strip_oussid_prefix=False,
          member_prefix=True, readme_sections=True,
          description="Cycle 5-9 (2017.1-2022.1) pipeline runs in today's shape: member.<MOUS> "
                      "names, modern README, product and auxiliary tars",
          source="S14 (tars since Cycle 5), S10/S4c (manifest, auxproducts), S17 (README), "
                 "archive holdings (member. names); docs/domain.md 2.2, 2.6"),
    Style("cycle5-nopipe", 5, member_prefix=True, readme_sections=True,
          description="Cycle 5-9 manual reductions and re-imaging in today's shape",
          source="as cycle5-pipe; manual scripts keep their names (scriptForPI globs them)"),
    Style("cycle7-nopipe", 7, description="Cycle 7 (2019.1.*) manual reductions (older shape)"),
    Style("cycle8-nopipe", 8, description="Cycle 8 (2021.1.*) and later manual reductions (older shape)"),
    Style("cycle10-pipe", 10, pipeline=True, accepts_antennapos=True, strip_oussid_prefix=False,
          member_prefix=True, readme_sections=True, unique_selfcal=True,
          description="Cycle 10 (2023.1) and later pipeline runs: as cycle5-pipe, at most one "
                      "*selfcal.json (pipeline self-calibration)",
          source="S4d (scriptForPI v2.5: selfcal.json, 'from Cycle 10 onwards')"),
    Style("cycle10-nopipe", 10, member_prefix=True, readme_sections=True,
          unique_selfcal=True,
          description="Cycle 10 (2023.1) and later manual reductions in today's shape",
          source="as cycle10-pipe"),
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
