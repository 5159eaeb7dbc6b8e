"""One batch job in its own process: ``python -m qa2core.batch.job SPEC_JSON``.

Started by :func:`qa2core.batch.worker.run_task`; parses the job's options with the CLI's request
model (:mod:`qa2core.planning.requests`) and runs the same engine calls as the CLI, then a full ``verify``
of what a package or stage job wrote. Messages go to stderr (the job's log);
stdout carries JSON lines: ``{"bytes": N, "total": M}`` while writing, then one
``{"result": {...}}``. Exit 0 when the job succeeded, 1 when it failed. If the process that
started it dies (a worker killed), the job kills itself at once, as a crash would: the
all-or-nothing writer leaves no half package and the retry recovers the scratch space.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from qa2core import messages
from qa2core.batch.ledger import fingerprint
from qa2core.errors import Qa2Error
from qa2core.planning import paths
from qa2core.planning.requests import TarRequest, VerifyRequest

_out_lock = threading.Lock()


def _emit(obj: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj, ensure_ascii=True, default=str) + "\n")
        sys.stdout.flush()


def _say(line: str) -> None:
    messages.say(line)
    sys.stderr.flush()


class _Meter:
    """The engine's write meter, reported on stdout at most twice a second."""

    def __init__(self) -> None:
        self.done = self.total = 0
        self.last = 0.0

    def start(self, total_bytes: int, entries: int) -> None:
        self.total = total_bytes

    def advance(self, source_bytes: int) -> None:
        self.done += source_bytes
        if time.monotonic() - self.last > 0.5:
            self.last = time.monotonic()
            _emit({"bytes": self.done, "total": self.total})

    def stop(self) -> None:
        _emit({"bytes": self.done, "total": self.total})


PARENT_ENV = "QA2_BATCH_WORKER_PID"  # set by the worker that starts the job's process


def _pdeathsig() -> None:
    """Linux: the kernel sends SIGKILL to this process when the thread that started it ends (its
    worker killed). Elsewhere, the watch thread alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def orphaned() -> bool:
    """Whether the worker that started this job is gone already: it passed its pid
    (:data:`PARENT_ENV`); our parent is now another process. A job started just as its worker
    died must not run on, unwatched, beside the retry of the job elsewhere."""
    want = os.environ.get(PARENT_ENV, "")
    return want.isdigit() and int(want) != os.getppid()


def _guard_parent() -> None:
    """First thing, before any lock or write: die with the worker (PR_SET_PDEATHSIG, then the
    check that it is still there, in that order: no gap), and watch it from a thread too."""
    _pdeathsig()
    if orphaned():
        os.kill(os.getpid(), signal.SIGKILL)  # as a crash would: nothing written yet
    _watch_parent()


def _watch_parent() -> None:
    want = os.environ.get(PARENT_ENV, "")
    parent = int(want) if want.isdigit() else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os.kill(os.getpid(), signal.SIGKILL)  # the worker died: stop as a crash would

    threading.Thread(target=watch, daemon=True, name="qa2-parent-watch").start()


def _findings(report: Any) -> list[dict[str, str]]:
    return [{"level": str(f.level), "rule": f.rule, "path": f.path, "message": f.message}
            for f in report.findings]


def inputs(command: str, a: dict[str, Any]) -> list[str]:
    """What a job reads: its fingerprint decides whether a finished job is still up to date."""
    if command == "package":
        return [a["origpath"], *(a[k] for k in ("readme", "piscript") if a.get(k))]
    if command == "stage":
        return [a["pipeline_root"], *(a[k] for k in ("piscript", "pipe_readme") if a.get(k))]
    return [a["packpath"]]


def _package(command: str, a: dict[str, Any], result: dict[str, Any]) -> bool:
    from qa2core import engine
    from qa2core.checks.verify import verify

    progress = lambda msg: _say(f"qa2: {msg}")  # noqa: E731
    # engine.package parses and checks the options as the CLI's do (qa2core.planning.requests), here
    # where the job runs: a PACKPATH whose parent is missing on this host is refused, not made.
    if command == "package":
        report = engine.package(
            a["origpath"], a["packpath"], readme_path=a.get("readme"), piscript=a.get("piscript"),
            style=a.get("style", ""), mode=a.get("mode", "fake"), append=a.get("append", "none"),
            noms=a.get("noms"), plugin=a.get("plugin"), jobs=a.get("jobs"),
            ous_uids=a.get("ous_uids"), progress=progress, meter=_Meter(),
            **({"force": True} if a.get("force") else {}))
    else:
        report = engine.stage(a["pipeline_root"], a["staged_root"], mode=a.get("mode", "copy"),
                              piscript=a.get("piscript"), pipe_readme=a.get("pipe_readme"),
                              plugin=a.get("plugin"), progress=progress, meter=_Meter())
    for line in messages.report_lines(report):
        _say(line)
    pack = a["packpath" if command == "package" else "staged_root"]
    result.update(plugin=report.plugin, member=report.member, warnings=list(report.warnings),
                  bytes=report.package_bytes if report.mode in ("copy", "hard") else 0)
    checked = verify(pack, level="full", style=report.style)
    for f in checked.findings:
        _say(messages.finding(f))
    _say(f"qa2: verify: {'OK' if checked.ok else 'FAILED'}: {pack}")
    result["findings"] = _findings(checked)
    result["outputs"] = fingerprint(pack, str(paths.ticket_zip(Path(pack))))
    return checked.ok


def _verify(a: dict[str, Any], result: dict[str, Any]) -> bool:
    from qa2core.checks.verify import verify

    req = VerifyRequest.from_options(**a)  # as qa2 verify parses its options
    checked = verify(req.packpath, level=req.level, for_ingestion=req.for_ingestion,
                     style=req.style, jobs=req.jobs)
    for f in checked.findings:
        _say(messages.finding(f))
    _say(f"qa2: verify: {'OK' if checked.ok else 'FAILED'}: {a['packpath']} ({req.level})")
    result["findings"] = _findings(checked)
    return checked.ok


def _tar(a: dict[str, Any], result: dict[str, Any]) -> bool:
    from qa2core.writing.archive import make_tars

    req = TarRequest.from_options(**a)  # as qa2 tar parses its options: --out must exist here
    report = make_tars(req.packpath, ous_uids=req.ous_uids, out_dir=req.out,
                       max_bytes=req.max_bytes)
    for line in report.warnings:
        _say(f"qa2: warning: {line}")
    for tar in report.tars:
        _say(f"qa2: wrote {tar}")
    sums = [t + s for t in report.tars for s in ("", ".sha256", ".md5sum")]
    result.update(tars=report.tars, warnings=report.warnings, outputs=fingerprint(*sums),
                  bytes=sum(os.path.getsize(t) for t in report.tars))
    return True


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Do the job; the result dict always, whatever happened."""
    command, args = spec["command"], spec["args"]
    t0 = time.monotonic()
    result: dict[str, Any] = {"command": command, "bytes": 0, "findings": [], "errors": [],
                              "warnings": [], "inputs": fingerprint(*inputs(command, args))}
    try:
        if command in ("package", "stage"):
            ok = _package(command, args, result)
        elif command == "verify":
            ok = _verify(args, result)
        else:
            ok = _tar(args, result)
        if not ok:
            result["errors"] = [f"{f['path']}: {f['message']} [{f['rule']}]"
                                for f in result["findings"] if f["level"] == "ERROR"]
    except Qa2Error as exc:
        ok, result["errors"] = False, list(exc.lines)
    except OSError as exc:
        ok, result["errors"] = False, [f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")]
    except Exception as exc:  # a bug: the traceback goes to the job's log
        traceback.print_exc()
        ok, result["errors"] = False, [f"internal error: {exc!r}"]
    for line in result["errors"]:
        _say(f"qa2: error: {line}")
    result.update(status="succeeded" if ok else "failed", duration=time.monotonic() - t0)
    return result


def still_true(command: str, args: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether what a success recorded is still on disk: the package (and ticket zip) it wrote,
    its tars, or (verify) the package it read, by the metadata fingerprint."""
    if command in ("package", "stage"):
        pack = args["packpath" if command == "package" else "staged_root"]
        want, now_ = result.get("outputs"), fingerprint(pack, str(paths.ticket_zip(Path(pack))))
    elif command == "tar":
        sums = [t + s for t in result.get("tars", []) for s in ("", ".sha256", ".md5sum")]
        want, now_ = result.get("outputs"), fingerprint(*sums) if sums else None
    else:
        want, now_ = result.get("inputs"), fingerprint(*inputs(command, args))
    return bool(want) and want == now_


def already_done(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The result of this job if it already succeeded in this campaign run and its package is
    unchanged on disk: from its done file (written by the job's process when it succeeded) or
    from the ledger. Dask may start a finished task again (a lost result it recomputes); the
    job then does nothing and says so."""
    run, job = spec.get("run"), spec.get("job")
    if not run or not job:
        return None
    found: list[dict[str, Any]] = []
    try:
        mark = json.loads(Path(spec["done"]).read_text(encoding="utf-8"))
        if isinstance(mark, dict) and mark.get("run") == run and mark.get("job") == job:
            found.append(mark.get("result") or {})
    except (KeyError, OSError, ValueError):
        pass
    if spec.get("ledger"):
        from qa2core.batch.ledger import Ledger

        found += [r.get("result") or {} for r in Ledger(Path(spec["ledger"])).records()
                  if r.get("run") == run and r.get("job") == job and r.get("state") == "succeeded"]
    for result in found:
        if isinstance(result, dict) and result.get("status") == "succeeded" and still_true(
                spec["command"], spec["args"], result):
            return {**result, "again": True}
    return None


def _mark_done(spec: dict[str, Any], result: dict[str, Any]) -> None:
    if not spec.get("done") or result["status"] != "succeeded":
        return
    path = Path(spec["done"])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"run": spec.get("run"), "job": spec.get("job"),
                                   "result": result}, ensure_ascii=True, default=str))
        os.replace(tmp, path)
    except OSError as exc:  # the ledger still says it; a recomputed task then finds it there
        _say(f"qa2: warning: {path}: {exc.strerror}: cannot note the job done")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m qa2core.batch.job SPEC_JSON", file=sys.stderr)
        return 2
    _guard_parent()
    spec = json.loads(argv[0])
    result = already_done(spec)
    if result is not None:
        _say(f"qa2: batch: already succeeded in this run ({spec['run']}) and unchanged on disk: "
             "not run again")
        _emit({"result": result})
        return 0
    result = run(spec)
    _mark_done(spec, result)
    _emit({"result": result})
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
