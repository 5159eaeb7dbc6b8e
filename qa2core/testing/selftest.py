"""``qa2 selftest`` and ``make demo``: build the samples, package each in every mode, verify.

The samples are the manual interferometric reduction, the manual Total Power reduction (both
real casatools products) and a pipeline run (astropy FITS and gzip tars only), all from
:mod:`qa2core.testing.sampledata`. The pipeline run is staged first (``qa2 stage --mode copy``),
then the staged tree is packaged. Every package is verified: a copy or hard package must pass
``qa2 verify``; a fake or ticket package must be reported as the FAKE rehearsal it is (not
deliverable), which is the expected result. Without casatools the samples that need it are
skipped, with the reason, and the rest still runs.

The ``selftest`` command in :mod:`qa2core.cli` imports this module inside the command only, so
the runtime packager never needs the ``qa2core[testing]`` extra (casatools, casadata, pytest).
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from qa2core.errors import Qa2Error
from qa2core.testing import sampledata
from qa2core.testing.sampledata import Sample, build_manual_reduction

__all__ = ["MARKER", "MODES", "SAMPLES", "Row", "Sample", "build_demo", "casa_unavailable",
           "passed", "prepare_workdir", "run_selftest", "table_lines", "verdict_lines"]

MODES = ("fake", "ticket", "copy", "hard")
SAMPLES = ("manual", "totalpower", "pipeline")
MARKER = ".qa2-selftest"  # a workdir holding it was made by the selftest and may be emptied
# Styles each sample is packaged with (the staged pipeline tree takes a pipeline style).
STYLES = {"manual": "cycle3-nopipe", "totalpower": "cycle2-nopipe", "pipeline": "cycle4-pipe"}


@dataclass(frozen=True)
class Row:
    """One line of the selftest table. ``ok`` is None for a step that did not run (skipped)."""

    sample: str
    mode: str  # "" for the steps done once per sample (build, stage)
    step: str  # build | stage | package | verify
    ok: bool | None
    detail: str
    seconds: float = field(default=0.0, compare=False)

    @property
    def status(self) -> str:
        return "SKIP" if self.ok is None else "PASS" if self.ok else "FAIL"


def build_demo(workdir: Path) -> Sample:
    """The manual sample alone: ``<workdir>/reduction``, its README header and scriptForPI.py
    next to it in ``workdir``."""
    return build_manual_reduction(Path(workdir) / "reduction")


def casa_unavailable() -> str:
    """Why real CASA products cannot be built here ("" when they can)."""
    if importlib.util.find_spec("casatools") is None:
        return "casatools is not installed (pip install 'qa2core[testing]', or make bootstrap)"
    from qa2core.testing import casa

    try:
        casa.tools()
        casa.casadata_path()
    except (ImportError, RuntimeError) as exc:
        return f"casatools cannot be used: {exc}"
    return ""


def _astropy_unavailable() -> str:
    if importlib.util.find_spec("astropy") is None:
        return "astropy is not installed (it writes the sample FITS images)"
    return ""


def prepare_workdir(workdir: Path) -> Path:
    """Make ``workdir`` empty, refusing a non-empty directory the selftest did not make."""
    work = Path(workdir).absolute()
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).exists():
            raise Qa2Error(f"{work}: not empty and not made by 'qa2 selftest'; choose another "
                           "--workdir")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    return work


@dataclass(frozen=True)
class _Input:
    """What one sample hands the packager."""

    root: Path
    project: str
    readme: Path
    piscript: Path


class _Table:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.rows: list[Row] = []
        self.say = say

    @contextmanager
    def step(self, sample: str, mode: str, step: str) -> Iterator[list[str]]:
        """Run one step; a Qa2Error (or any other exception: a bug) makes the row FAIL.
        The body appends its detail to the yielded list, and may raise _Failed to fail."""
        detail: list[str] = []
        t0 = time.perf_counter()
        ok = True
        try:
            yield detail
        except _Failed as exc:
            ok, detail = False, [str(exc)]
        except Qa2Error as exc:
            ok, detail = False, ["; ".join(exc.lines)]
        except Exception as exc:  # a bug in qa2 or in a builder: name it, keep going
            ok, detail = False, [f"{type(exc).__name__}: {exc}"]
        row = Row(sample, mode, step, ok, " ".join(detail), time.perf_counter() - t0)
        self.rows.append(row)
        if not ok:
            self.say(f"selftest: {sample} {mode + ' ' if mode else ''}{step} FAILED: {row.detail}")

    def skip(self, sample: str, mode: str, step: str, why: str) -> None:
        self.rows.append(Row(sample, mode, step, None, why))

    def failed(self, sample: str) -> bool:
        return any(r.ok is False for r in self.rows if r.sample == sample)


class _Failed(Exception):
    """A check that did not hold (the row's detail)."""


def _header(path: Path, project: str, cycle: int, comment: str) -> Path:
    path.write_text("Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\n"
                    f"Cycle: {cycle}\nProject code: {project}\nPI name: A. Reducer\n"
                    f"QA2 Result: PASS\nComments from Reducer: {comment}\n#####\n")
    return path


def _build(sample: str, base: Path) -> _Input:
    if sample == "manual":
        s = build_manual_reduction(base / "reduction")
        return _Input(s.root, s.project, s.readme_header, s.piscript)
    if sample == "totalpower":
        s = sampledata.build_tp_reduction(base / "reduction")
        return _Input(s.root, s.project, s.readme_header, s.piscript)
    run = sampledata.build_auxproducts_run(base)
    piscript = base / "qa2" / "scriptForPI.py"
    piscript.parent.mkdir()
    piscript.write_text(sampledata.pi_script_text())
    readme = _header(base / "README.header.txt", run.project, 5, "pipeline calibration and imaging")
    return _Input(run.root, run.project, readme, piscript)


_NEEDS = {"manual": (casa_unavailable,), "totalpower": (casa_unavailable,),
          "pipeline": (_astropy_unavailable,)}
_WHAT = {"manual": "manual interferometric reduction (real MSs, caltables, CASA images, FITS)",
         "totalpower": "manual Total Power reduction (real MSs, caltables, CASA image, FITS)",
         "pipeline": "pipeline run, hifa_calimage 2017 (FITS, weblog and caltables tarballs)"}


def _check_verify(pack: Path, mode: str, plugins) -> str:
    from qa2core.checks.verify import FAKE, verify
    from qa2core.hooks.model import Level

    checked = verify(pack, plugins=plugins)
    errors = [f.text() for f in checked.findings if f.level is Level.ERROR]
    if errors:
        raise _Failed(f"{len(errors)} error(s): " + "; ".join(errors[:3]))
    if mode in ("fake", "ticket"):
        if not any(f.rule == "package.fake" for f in checked.findings):
            raise _Failed("a rehearsal package was not reported as FAKE")
        return f"OK as expected: {FAKE} ({len(checked.findings)} finding(s))"
    return f"OK ({len(checked.findings)} finding(s), plugin {checked.plugin})"


def run_selftest(workdir: Path, *, say: Callable[[str], None] | None = None,
                 plugins=None, samples: tuple[str, ...] | None = None) -> list[Row]:
    """Build each sample (default :data:`SAMPLES`) below ``workdir``, which must be empty or made
    by an earlier selftest; package it in every mode, verify each package. One :class:`Row` per
    step, in order."""
    from qa2core import engine
    from qa2core.hooks.manager import get_plugin_manager

    plugins = plugins or get_plugin_manager()
    work = prepare_workdir(workdir)
    table = _Table(say or (lambda _line: None))
    for sample in samples or SAMPLES:
        base = work / sample
        missing = "; ".join(filter(None, (need() for need in _NEEDS[sample])))
        if missing:
            table.skip(sample, "", "build", missing)
            table.say(f"selftest: skipping the {sample} sample: {missing}")
            continue
        base.mkdir()
        table.say(f"selftest: building the {_WHAT[sample]} in {base}")
        with table.step(sample, "", "build") as detail:
            made = _build(sample, base)
            detail.append(f"{made.root}: {_WHAT[sample]}")
        if table.failed(sample):
            continue
        source = made.root
        if sample == "pipeline":
            table.say("selftest: staging it (qa2 stage --mode copy), then packaging the staged tree")
            with table.step(sample, "", "stage") as detail:
                staged = base / "staged" / made.project
                staged.parent.mkdir()
                report = engine.stage(made.root, staged, mode="copy", piscript=made.piscript,
                                      plugins=plugins)
                detail.append(f"{staged / report.member} ({len(report.files)} entries, mode copy)")
                source = staged
            if table.failed(sample):
                continue
        for mode in MODES:
            pack = base / mode / made.project
            pack.parent.mkdir()
            with table.step(sample, mode, "package") as detail:
                report = engine.package(source, pack, readme_path=made.readme,
                                        piscript=made.piscript, style=STYLES[sample], mode=mode,
                                        plugins=plugins)
                ticket = f"; ticket {report.ticket}" if report.ticket else ""
                detail.append(f"{pack / report.member} ({len(report.files)} entries, "
                              f"{report.plugin}{ticket})")
            if table.rows[-1].ok is False:
                table.skip(sample, mode, "verify", "not run: packaging failed")
                continue
            with table.step(sample, mode, "verify") as detail:
                detail.append(_check_verify(pack, mode, plugins))
    return table.rows


def table_lines(rows: list[Row]) -> list[str]:
    """The pass/fail table: one line per row, aligned."""
    widths = {"sample": max([6, *(len(r.sample) for r in rows)]),
              "mode": max([4, *(len(r.mode) for r in rows)]),
              "step": max([4, *(len(r.step) for r in rows)])}
    lines = [f"{'sample':<{widths['sample']}}  {'mode':<{widths['mode']}}  "
             f"{'step':<{widths['step']}}  result  time    detail"]
    for r in rows:
        lines.append(f"{r.sample:<{widths['sample']}}  {r.mode or '-':<{widths['mode']}}  "
                     f"{r.step:<{widths['step']}}  {r.status:<6}  {r.seconds:5.1f}s  {r.detail}")
    return lines


def passed(rows: list[Row]) -> bool:
    """No step failed (skipped samples do not fail the selftest)."""
    return not any(r.ok is False for r in rows)


def verdict_lines(rows: list[Row], workdir: Path, seconds: float) -> list[str]:
    """What was skipped and why, where the packages are, and the verdict."""
    lines = [f"skipped: {r.sample}: {r.detail}" for r in rows if r.ok is None and r.step == "build"]
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("PASS", "FAIL", "SKIP")}
    lines.append(f"packages: {Path(workdir).absolute()}/<sample>/<mode>/<project>")
    lines.append(f"selftest: {'PASSED' if passed(rows) else 'FAILED'}: {counts['PASS']} passed, "
                 f"{counts['FAIL']} failed, {counts['SKIP']} skipped in {seconds:.1f} s")
    return lines
