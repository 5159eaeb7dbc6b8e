"""The ``qa2`` command: a thin Typer layer over the engine.

stdout carries results (one JSON object with ``--json``); stderr carries progress, warnings
and errors. Exit 0 done, 1 refused or failed, 2 usage (docs/contract.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from qa2core import messages
from qa2core.cli_examples import _examples
from qa2core.errors import Qa2Error
from qa2core.writing import readme

app = typer.Typer(
    name="qa2",
    help="Package ALMA QA2 reductions into delivery trees (QA_Packager / QA_Pipeline_Stager).",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if not value:
        return
    from qa2core import __version__

    _print(f"qa2core {__version__}")
    for info in _plugins().installed():
        state = f"  BROKEN: {info.error}" if info.error else ""
        _print(f"  {info.name:<16} {info.version or '-':<8} {info.distribution}{state}")
    raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print qa2core's version and every plugin's name, version and distribution.")]
          = False) -> None:
    """Package ALMA QA2 reductions into delivery trees (QA_Packager / QA_Pipeline_Stager)."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


_print = messages.write


def _err(line: str) -> None:
    """A line on stderr, best effort: a progress line that cannot be written (stderr on a full
    disk, a closed pipe) must not stop a run, nor a finished one count as failed; the exit
    status carries the outcome."""
    with suppress(OSError):
        messages.say(line)


def _emit(obj: dict[str, Any]) -> None:
    # ensure_ascii: one valid JSON object whatever the names; a byte that is not UTF-8 is the
    # surrogate escape "\udce9" (Python's json and os.fsencode give the original bytes back).
    # Written as it is encoded, a MiB at a time: json.dumps held the text of a 200,000-file
    # report and its millions of pieces at once (800 MB peak; the same bytes).
    out, pieces, size = sys.stdout, [], 0
    for piece in json.JSONEncoder(indent=2, default=str, ensure_ascii=True).iterencode(obj):
        pieces.append(piece)
        size += len(piece)
        if size >= 1 << 20:
            out.write("".join(pieces))
            pieces, size = [], 0
    out.write("".join(pieces) + "\n")


@contextmanager
def _boundary(as_json: bool, base: dict[str, Any] | None = None) -> Iterator[None]:
    """Turn Qa2Error (and OSError) into one line per problem and the contract's exit code."""
    try:
        yield
    except Qa2Error as exc:
        if os.environ.get("QA2_DEBUG") and exc.__cause__ is not None:  # a plugin's own traceback
            import traceback

            traceback.print_exception(exc.__cause__, file=sys.stderr)
        for line in exc.lines:
            _err(f"qa2: error: {line}")
        if as_json:
            named = {"plugin": exc.plugin} if exc.plugin else {}
            named |= getattr(exc, "json", None) or {}  # e.g. the tied claims of an ambiguous input
            _emit({**(base or {}), **named, "errors": list(exc.lines), "exit_code": exc.exit_code})
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        line = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        _err(f"qa2: error: {line}")
        if as_json:
            _emit({**(base or {}), "errors": [line], "exit_code": 1})
        raise typer.Exit(1) from None


class _RichMeter:
    """Bytes, rate and time left on stderr while a package is written (terminals only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("qa2: writing"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
        self.task = None

    def start(self, total_bytes: int, entries: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("write", total=max(total_bytes, 1))

    def advance(self, source_bytes: int) -> None:
        self.progress.advance(self.task, source_bytes)

    def stop(self) -> None:
        self.progress.stop()


def _meter() -> _RichMeter | None:
    return _RichMeter() if sys.stderr.isatty() else None


def _plugins() -> Any:
    from qa2core.hooks.manager import get_plugin_manager

    return get_plugin_manager()


@app.command(epilog=_examples("package"))
def package(
    origpath: Annotated[Path, typer.Argument(help="Reduction directory of one SB (or staged tree).")],
    packpath: Annotated[Path, typer.Argument(help="Package root, named after the project code.")],
    readme: Annotated[Path | None, typer.Option(help="README header text file.")] = None,
    piscript: Annotated[Path | None, typer.Option(help="scriptForPI.py, or its directory.")] = None,
    style: Annotated[str, typer.Option(help="Packaging style (see 'qa2 styles').")] = "",
    mode: Annotated[str, typer.Option(help="fake | ticket | copy | hard")] = "fake",
    append: Annotated[str, typer.Option(help="none | group | member")] = "none",
    noms: Annotated[bool | None, typer.Option("--noms/--ms",
                                              help="Leave out (default) or ship calibrated MSs; "
                                                   "decides when --style is empty.")] = None,
    plugin: Annotated[str | None, typer.Option(help="Skip ranking; this plugin must claim.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write nothing; print the plan.")] = False,
    as_json: JsonOpt = False,
    jobs: Annotated[int | None, typer.Option(help="Parallel copy/compress jobs (at least 1; default 4).")]
    = None,
    ous_uids: Annotated[str | None, typer.Option(
        help="Real OUS names instead of the placeholders: SOUS,GOUS,MOUS (uid://A001/X87c/X67,"
             "uid://...), or 'auto' to take them from the input's names (a pipeline run's "
             "SOUS_/GOUS_/MOUS_ directories); 'qa2 stage' prints the value.")] = None,
    force: Annotated[bool, typer.Option("--force", help="With --append member: add the member "
                                        "even if an existing one holds the same EBs.")] = False,
) -> None:
    """Package ORIGPATH into PACKPATH (QA_Packager)."""
    from qa2core import engine

    base = {"plugin": None, "style": style, "mode": mode, "files": [], "warnings": []}
    with _boundary(as_json, base):
        report = engine.package(
            origpath, packpath, readme_path=readme, piscript=piscript, style=style,
            mode=mode, append=append, noms=noms, plugin=plugin, dry_run=dry_run,
            jobs=jobs, plugins=_plugins(), progress=lambda msg: _err(f"qa2: {msg}"),
            ous_uids=ous_uids, meter=_meter(), force=force,
        )
    _finish(report, as_json)


def _finish(report: Any, as_json: bool) -> None:
    """The report of a finished run. The package is written by now: output that fails (stdout
    on a full disk) cannot undo it, so the run still exits 0."""
    try:
        _show(report, as_json)
    except OSError:
        raise typer.Exit(0) from None


def _show(report: Any, as_json: bool) -> None:
    if as_json:
        for line in messages.report_lines(report, summary=False):  # the JSON is the summary
            _err(line)
        _emit(report.to_json())
        return
    if report.dry_run:
        for line in messages.plan_lines(report):
            _err(line)
    for line in messages.report_lines(report):
        _err(line)
    _print(readme.tree_listing(report.member, list(report.listing)), end="")


@app.command(epilog=_examples("stage"))
def stage(
    pipeline_root: Annotated[Path, typer.Argument(help="Pipeline run directory (<proj>_<date>/...).")],
    staged_root: Annotated[Path, typer.Argument(help="Staged tree root, named after the project.")],
    mode: Annotated[str, typer.Option(help="copy | hard | fake")] = "copy",
    piscript: Annotated[Path | None, typer.Option(help="scriptForPI.py, or its directory.")] = None,
    pipe_readme: Annotated[Path | None, typer.Option(help="Becomes the member README.")] = None,
    plugin: Annotated[str | None, typer.Option(help="Skip ranking; this plugin must claim.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write nothing; print the plan.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stage a pipeline run into a delivery-shaped tree (QA_Pipeline_Stager).

    The staged tree has the placeholder OUS names; the --ous-uids value that gives the real ones
    to 'qa2 package' later is printed as an info line. Input that no staging plugin claims (a
    manual reduction) is refused: package it with 'qa2 package'."""
    from qa2core import engine

    base = {"plugin": None, "mode": mode, "files": [], "warnings": []}
    with _boundary(as_json, base):
        report = engine.stage(pipeline_root, staged_root, mode=mode, piscript=piscript,
                              pipe_readme=pipe_readme, plugin=plugin, dry_run=dry_run,
                              plugins=_plugins(), progress=lambda msg: _err(f"qa2: {msg}"),
                              meter=_meter())
    _finish(report, as_json)


class VerifyLevel(str, Enum):
    fast = "fast"
    complete = "complete"
    full = "full"


@app.command(epilog=_examples("verify"))
def verify(
    packpath: Annotated[Path, typer.Argument(help="Package root (PACKPATH).")],
    fast: Annotated[bool, typer.Option("--fast", help="File count and bytes only.")] = False,
    complete: Annotated[bool, typer.Option("--complete", help="Every file listed, none unlisted; "
                                           "no re-hash.")] = False,
    for_ingestion: Annotated[bool, typer.Option("--for-ingestion",
                                                help="Placeholder OUS names are an ERROR.")] = False,
    style: Annotated[str, typer.Option(help="Style the package was made with (default: inferred).")]
    = "",
    as_json: JsonOpt = False,
    jobs: Annotated[int, typer.Option(help="Hashing threads (at least 1).")] = 4,
) -> None:
    """Check a package: manifest checksums, completeness, and every plugin's structure rules."""
    from qa2core.checks.verify import verify as run_verify
    from qa2core.planning.requests import VerifyRequest

    level = "fast" if fast else "complete" if complete else "full"
    with _boundary(as_json, {"ok": False, "findings": []}):
        req = VerifyRequest.from_options(packpath, fast=fast, complete=complete,
                                         for_ingestion=for_ingestion, style=style, jobs=jobs)
        report = run_verify(req.packpath, level=req.level, for_ingestion=req.for_ingestion,
                            style=req.style, jobs=req.jobs, plugins=_plugins())
    if as_json:
        _emit(report.to_json())
    else:
        for f in report.findings:
            _err(messages.finding(f))
        verdict = "OK" if report.ok else "FAILED"
        print(f"{verdict}: {packpath} ({level}; {len(report.members)} member(s); "
              f"plugin {report.plugin or 'none'}; {len(report.findings)} finding(s))")
    if not report.ok:
        raise typer.Exit(1)


@app.command("tar", epilog=_examples("tar"))
def tar_(
    packpath: Annotated[Path, typer.Argument(help="Package root (PACKPATH).")],
    ous_uids: Annotated[str | None, typer.Option(help="SOUS,GOUS,MOUS: real OUS names in the tar.")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Directory for the tars (default: beside "
                                             "PACKPATH).")] = None,
    max_size: Annotated[float, typer.Option(help="Volume size limit in GiB.")] = 100.0,
    as_json: JsonOpt = False,
) -> None:
    """Write <proj>_<MOUS>_NNN_of_MMM.tar with .sha256 and .md5sum beside each."""
    from qa2core.planning.requests import TarRequest
    from qa2core.writing.archive import make_tars

    with _boundary(as_json, {"tars": []}):
        req = TarRequest.from_options(packpath, ous_uids=ous_uids, out=out, max_size=max_size)
        report = make_tars(req.packpath, ous_uids=req.ous_uids, out_dir=req.out,
                           max_bytes=req.max_bytes, plugins=_plugins())
    for line in report.warnings:
        _err(f"qa2: warning: {line}")
    if as_json:
        _emit({"tars": report.tars, "sha256": report.sha256, "md5": report.md5,
               "warnings": report.warnings})
        return
    for path in report.tars:
        print(path)


@app.command(epilog=_examples("detect"))
def detect(
    origpath: Annotated[Path, typer.Argument(help="Reduction directory to look at.")],
    as_json: JsonOpt = False,
) -> None:
    """Print the plugin that claims ORIGPATH, and every claim."""
    from qa2core import engine

    with _boundary(as_json, {"plugin": None, "claims": []}):
        decision = engine.detect(origpath, _plugins())
    ranked = decision.ranked
    claims = [{"plugin": r.plugin, "score": r.claim.score, "reason": r.claim.reason,
               "evidence": list(r.claim.evidence), "style": r.claim.style} for r in ranked]
    if as_json:
        _emit({"plugin": decision.plugin, "style": decision.claim.style, "claims": claims})
        return
    print(f"{decision.plugin}  (score {decision.claim.score}: {decision.claim.reason})")
    if decision.claim.style:
        print(f"  suggested style: --style {decision.claim.style}")
    for r in ranked:
        if r.plugin != decision.plugin:
            print(f"  also: {r.line()}")


@app.command(epilog=_examples("plugins"))
def plugins(as_json: JsonOpt = False) -> None:
    """List installed plugins (entry-point group 'qa2'); exit 1 if one of them failed to load."""
    from dataclasses import asdict

    with _boundary(as_json):
        infos = _plugins().installed()
    if as_json:
        _emit({"plugins": [asdict(i) | {"hooks": list(i.hooks)} for i in infos]})
    else:
        for i in infos:
            print(f"{i.name:<16} BROKEN: {i.error}" if i.error else
                  f"{i.name:<16} {i.distribution} {i.version}  hooks: {', '.join(i.hooks)}")
    if any(i.error for i in infos):
        raise typer.Exit(1)


@app.command(epilog=_examples("styles"))
def styles(as_json: JsonOpt = False) -> None:
    """List packaging styles and their switches."""
    from dataclasses import asdict

    from qa2core.planning.styles import all_styles

    rows = [asdict(s) for s in all_styles()]
    if as_json:
        _emit({"styles": rows})
        return
    for s in rows:  # one line: when the style applies
        kind = "pipeline" if s["pipeline"] else "manual  " if s["name"] else "either  "
        _print(f"{s['name'] or chr(34) * 2:<15} {kind}  {s['description']}")
    _print("switches of each style: qa2 styles --json; docs/layout-rules.md says which style "
           "fits data the table does not name")


@app.command(epilog=_examples("inspect"))
def inspect(
    origpath: Annotated[Path, typer.Argument(help="Reduction directory to look at.")],
    style: Annotated[str, typer.Option(help="Packaging style whose fates to show (see 'qa2 "
                                       "styles').")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Show every item of ORIGPATH: its kind, the facts read from its data, and its fate (the
    destination, action and rule, or why it stays out), grouped by destination directory.
    CASA tables are read through copies in a temporary directory: ORIGPATH is never written."""
    from qa2core import engine

    with _boundary(as_json):
        seen = engine.inspect(origpath, _plugins(), style=style)
    if as_json:
        _emit(seen)
        for line in seen["errors"]:  # every item shown; the plan or the input is refused
            _err(f"qa2: error: {line}")
        if seen["errors"]:
            raise typer.Exit(1)
        return
    _print(f"plugin: {seen['plugin']} (style {seen['style'] or chr(34) * 2}); facts read with "
           f"casatools {seen['casatools']}" if not seen["casatools"].startswith("none") else
           f"plugin: {seen['plugin']} (style {seen['style'] or chr(34) * 2}); facts from "
           f"table.info and FITS headers only (casatools {seen['casatools']})")
    if seen["base"]:
        _print(f"paths relative to {seen['base']}/")
    groups: dict[str, list[str]] = {}
    for item in seen["items"]:
        name = item["shown"] + ("/" if item["type"] != "file" else "")
        tail = f"  | {item['facts_line']}" if item["facts_line"] else ""
        for fate in item["fate"]:
            if fate["dest"] and fate.get("problem"):  # the plan refuses this placement
                key = fate["dest"].rpartition("/")[0] + "/"
                line = (f"{name}  {item['kind']}  REFUSED {fate['action']} -> {fate['dest']} "
                        f"[{fate['rule']}]: {fate['problem']}")
            elif fate["dest"]:
                key = fate["dest"].rpartition("/")[0] + "/"
                line = f"{name}  {item['kind']}  {fate['action']} -> {fate['dest']} [{fate['rule']}]"
            elif item["kind"] == "unclassified" and not item["skip"]:
                key, line = "not recognised:", f"{name}  (no rule of {seen['plugin']} takes it)"
            else:
                key = f"left out (style {seen['style'] or chr(34) * 2}):"
                line = f"{name}  {item['kind']}  skip: {item['skip']}"
            groups.setdefault(key, []).append(f"  {line}{tail}")
    for key in sorted(groups, key=lambda k: (k.endswith(":"), k)):
        _print(key)
        for line in groups[key]:
            _print(line)
    for f in seen["findings"]:
        if f["level"] != "ERROR":  # errors: below, with the plan's
            _err(f"qa2: {f['level'].lower().replace('warn', 'warning')}: {f['path']}: "
                 f"{f['message']} [{f['rule']}]")
    for line in seen["errors"]:
        _err(f"qa2: error: {line}")
    if seen["errors"]:  # every item is shown above; qa2 package would refuse this input
        raise typer.Exit(1)


@app.command(epilog=_examples("selftest"))
def selftest(
    workdir: Annotated[Path | None, typer.Option(help="Where to build (default: a new temp dir); "
                                                 "emptied first if an earlier selftest made it.")]
    = None,
) -> None:
    """Build the sample manual, Total Power and pipeline reductions, package each in every mode
    (the pipeline run staged first), verify each package; print a pass/fail table, exit 0 or 1."""
    import tempfile
    import time

    from qa2core.testing import selftest as st

    work = workdir or Path(tempfile.mkdtemp(prefix="qa2-selftest-"))
    _err(f"qa2: selftest in {work}: samples {', '.join(st.SAMPLES)}; modes {', '.join(st.MODES)}")
    t0 = time.perf_counter()
    with _boundary(False):
        rows = st.run_selftest(work, say=lambda line: _err(f"qa2: {line}"), plugins=_plugins())
    for line in [*st.table_lines(rows), *st.verdict_lines(rows, work, time.perf_counter() - t0)]:
        _print(line)
    if not st.passed(rows):
        raise typer.Exit(1)


plugin_app = typer.Typer(help="Write and check qa2 plugins.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("new")
def plugin_new(
    name: Annotated[str, typer.Argument(help="The plugin's name (entry point), e.g. arcsite.")],
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Where to write the project (default: ./qa2-NAME).")] = None,
) -> None:
    """Write a plugin project (composition API, tests with the plugin check) to start from."""
    from qa2core.templates import new_plugin

    with _boundary(False):
        dest = directory or Path(f"qa2-{name.replace('_', '-')}")
        for path in new_plugin(name, dest):
            print(path)
    _err(f"qa2: plugin project {name} written to {dest}; pip install -e '{dest}[test]' and run "
         f"pytest {dest}")


from qa2core import cli_batch  # noqa: E402, F401  (adds `qa2 batch` to the app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``qa2`` script. Unexpected errors become one line (QA2_DEBUG=1 for
    the traceback): a reducer's terminal is no place for a stack dump."""
    try:
        app(args=argv)
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("QA2_DEBUG"):
            raise
        _err(f"qa2: internal error: {exc!r} (set QA2_DEBUG=1 for the traceback; please report it)")
        sys.exit(1)
