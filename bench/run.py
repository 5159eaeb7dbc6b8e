"""qa2 benchmark (`make bench`): qa2 against cp -al, cp -a, sha256sum and gzip -6 in one run.

Builds the reduction directories of the chosen cases (bench/fixtures.py: sample, large, small,
fake200k) in a temporary directory on the same file system as the repository, then times,
round-robin, ``--repeat`` times each:

* baselines: ``cp -al``, ``cp -a``, ``find -type f | xargs sha256sum`` (and the same with
  ``openssl dgst -sha256``), ``gzip -6`` of the PBs; on the large case also the two-core hashing
  floor (the files split by bytes between FLOOR_PROCS ``openssl dgst -sha256`` processes run at
  once), and, on the package the copy run wrote, ``sha256sum -c`` of its manifest and the floor
  over its files;
* qa2: ``qa2 package`` in hard, copy and fake mode and as a dry run (the CLI, as users run it),
  ``qa2 verify`` of the large copy-mode package, plus ``qa2core.writing.fileops.gzip_file`` on the PBs
  and ``hash_file`` over every file (in process); fake200k times only ``cp -al`` and qa2 fake
  (also with ``--json``) and the dry run;
* sample: the sample reduction packaged in copy mode (once, untimed); ``qa2 verify`` of it
  against ``qa2 --help``, ``--sample-runs`` times each per repetition, warm cache. Before the big
  cases are built, each command of IMPORT_BUDGET runs under ``python -X importtime`` (best of
  IMPORT_RUNS): total import time and which heavy packages it imported, against the budget.

Before every run the source files are evicted from the page cache (sync + POSIX_FADV_DONTNEED),
so each run reads its input from disk; programs and directory metadata stay cached (fake200k
reads no file data, so it is not evicted). Each ``qa2`` runs under a small spawner that reports
its wall time and peak RSS. Each run writes into its own directory, all removed at the end
(also on Ctrl-C). Results are medians, reported as ratios to the baselines measured in the same
run, and checked against the targets (TARGETS) and the previous record; docs/benchmarks.md is
the record. First of all, on the quiet machine, the start-up of ``qa2 --help`` (best of
HELP_RUNS, target HELP_MAX_S): the test suite asserts no duration.

    .venv/bin/python bench/run.py --out docs/benchmarks.md [--cases sample,small] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import batch
import fixtures
import report
from fixtures import MB, Case
from report import Ratio, Result

from qa2core.writing import fileops

REPO = Path(__file__).resolve().parents[1]
QA2 = Path(os.path.normpath(Path(sys.executable).absolute())).with_name("qa2")  # the venv's qa2
STYLE = "cycle3-nopipe"
PROJECT = "2015.1.00123.S"  # the sample's project code: PACKPATH is named after it
JOBS = min(4, os.cpu_count() or 1)  # qa2's default --jobs

# What each qa2 operation is compared with (medians of the baselines are summed).
RATIOS_LARGE = (
    Ratio("large", "qa2_hard", ("cp_al", "sha256sum")),
    Ratio("large", "qa2_hard", ("cp_al", "openssl")),
    Ratio("large", "qa2_hard", ("cp_al", "openssl", "gzip6")),
    Ratio("large", "qa2_hard", ("cp_al", "openssl2")),
    Ratio("large", "qa2_copy", ("cp_a",)),
    Ratio("large", "qa2_copy", ("cp_a", "sha256sum")),
    Ratio("large", "qa2_copy", ("cp_a", "openssl")),
    Ratio("large", "qa2_copy", ("cp_a", "openssl", "gzip6")),
    Ratio("large", "qa2_copy", ("cp_a", "gzip6")),
    Ratio("large", "qa2_verify", ("sha256sum_c",)),
    Ratio("large", "qa2_verify", ("openssl2_pkg",)),
    Ratio("large", "qa2_fake", ("cp_al",)),
    Ratio("large", "gzip_file", ("gzip6",)),
    Ratio("large", "hash_file", ("sha256sum",)),
    Ratio("large", "hash_file", ("openssl",)),
)
RATIOS_MANY = (
    Ratio("fake200k", "qa2_fake", ("cp_al",)),
    Ratio("fake200k", "qa2_fake_json", ("cp_al",)),
    Ratio("fake200k", "qa2_plan", ("cp_al",)),
)
RATIOS_SAMPLE = (Ratio("sample", "qa2_verify", ("qa2_help",)),)
# The engine issue's and issue 21's targets: (case, qa2 op, baselines, at most this ratio).
TARGET_RATIOS = (("small", "qa2_copy", ("cp_a", "sha256sum"), 1.0),
                 ("small", "qa2_hard", ("cp_al", "sha256sum"), 1.5),
                 ("large", "qa2_hard", ("cp_al", "openssl2"), 2.0),
                 ("large", "qa2_copy", ("cp_a", "gzip6"), 0.5),
                 ("large", "qa2_verify", ("openssl2_pkg",), 2.5),
                 ("sample", "qa2_verify", ("qa2_help",), 2.0))
FLOOR_PROCS = 2  # the hashing floor: this many `openssl dgst -sha256` processes at once
MANIFEST = "manifest-sha256.txt"  # in PACKPATH, `sha256sum -c` format
# Issue 21's import budget (bench/run.py sets the numbers from its examples): command key, what
# it runs, at most this many ms of imports (best of IMPORT_RUNS under `python -X importtime`),
# and the heavy packages it must not import. IMPORT_WATCH are reported for every command.
IMPORT_WATCH = ("numpy", "astropy", "casatools", "dask")
IMPORT_BUDGET = (
    ("help", "`qa2 --help`", 150.0, IMPORT_WATCH),
    ("verify_nopix", "`qa2 verify` (sample package without pixels)", 200.0, IMPORT_WATCH),
    ("verify", "`qa2 verify` (sample package; its FITS pixels are checked)", 350.0,
     ("astropy", "casatools", "dask")),
    ("fake", "`qa2 package --mode fake` (sample reduction)", 250.0, IMPORT_WATCH),
)
IMPORT_RUNS = 3
FAKE_MAX_S, FAKE_MAX_RSS_MIB = 10.0, 300.0  # fake200k: qa2 package --mode fake
# `qa2 --help`, best of HELP_RUNS, measured before the data is built (moved here from the test
# suite: a timing that fails under load does not belong in `make test`).
HELP_MAX_S, HELP_RUNS = 0.3, 5
SCHEDULER_MAX_S = 15.0  # qa2 batch refuses a wrong --scheduler within this (issue 19)
# Run qa2 from a small interpreter, which writes qa2's wall time and peak RSS to argv[1]. Linux
# keeps the RSS high-water mark of the spawning process across exec (posix_spawn shares its
# memory until the exec), so the spawner must be small: the bench itself holds file lists.
SPAWNER = """import json, os, sys, time
t = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - t, "rss_kib": usage.ru_maxrss}, fh)
sys.exit(os.waitstatus_to_exitcode(status))
"""
RATIOS_SMALL = (
    Ratio("small", "qa2_hard", ("cp_al", "sha256sum")),
    Ratio("small", "qa2_hard", ("cp_al", "openssl")),
    Ratio("small", "qa2_copy", ("cp_a",)),
    Ratio("small", "qa2_copy", ("cp_a", "sha256sum")),
    Ratio("small", "qa2_copy", ("cp_a", "openssl")),
    Ratio("small", "qa2_fake", ("cp_al",)),
    Ratio("small", "hash_file", ("sha256sum",)),
    Ratio("small", "hash_file", ("openssl",)),
)


class BenchError(RuntimeError):
    """A measured command failed: its command line and its exact error output."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        super().__init__(f"exit {returncode}: {stderr}")
        self.command = command


@dataclass(frozen=True)
class Op:
    """One measured operation: ``run(scratch)`` does it inside an empty scratch directory."""

    case: Case
    key: str
    label: str
    kind: str
    run: Callable[[Path], dict[str, Any]]
    nbytes: int  # what MB/s divides by
    nfiles: int  # what µs/file divides by
    runs: int = 1  # runs per repetition (each one a sample of the median)


# --------------------------------------------------------------------------- operations


def sh(args: Sequence[str | Path], stdout: Any = subprocess.DEVNULL, cwd: Path | None = None) -> str:
    """Run a command; raise BenchError with its stderr when it fails."""
    out = subprocess.run([str(a) for a in args], stdout=stdout, stderr=subprocess.PIPE,
                         text=True, check=False, cwd=cwd)
    if out.returncode:
        raise BenchError(" ".join(str(a) for a in args), out.returncode, out.stderr.strip())
    return out.stdout if isinstance(out.stdout, str) else ""


def cp(flags: str, case: Case) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        sh(["cp", flags, case.root, scratch / "copy"])
        return {}
    return run


def hash_all(case: Case, *tool: str) -> Callable[[Path], dict[str, Any]]:
    """``find ROOT -type f | xargs TOOL``: one hashing process per ~thousands of files."""
    script = 'set -o pipefail; root="$1"; shift; find "$root" -type f -print0 | xargs -0 "$@" > /dev/null'

    def run(scratch: Path) -> dict[str, Any]:
        sh(["bash", "-c", script, "hash_all", case.root, *tool])
        return {}
    return run


def gzip6(pbs: tuple[Path, ...]) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        size = 0
        for pb in pbs:
            out = scratch / f"{pb.name}.gz"
            with open(out, "xb") as fh:
                sh(["gzip", "-6", "-c", pb], stdout=fh)
            size += out.stat().st_size
        return {"out_bytes": size}
    return run


def qa2_package(case: Case, mode: str, dry_run: bool = False, as_json: bool = True,
                read_json: bool = True) -> Callable[[Path], dict[str, Any]]:
    """``qa2 package`` under SPAWNER; its ``--json`` report is kept in the scratch directory and
    read back when ``read_json`` (not for 200,000 entries: that report is 120 MB)."""
    def run(scratch: Path) -> dict[str, Any]:
        args: list[str | Path] = [QA2, "package", case.root, scratch / PROJECT, "--mode", mode,
                                  "--style", STYLE, "--readme", case.sample.readme_header,
                                  "--piscript", case.sample.piscript]
        args += ["--json"] if as_json else []
        args += ["--dry-run"] if dry_run else []
        info = spawn(args, scratch)
        if as_json and read_json:
            info["json"] = json.loads((scratch / "stdout.txt").read_bytes())
        return info
    return run


def spawn(args: Sequence[str | Path], scratch: Path) -> dict[str, Any]:
    """Run ``args`` under SPAWNER, stdout to ``scratch/stdout.txt``: its wall time and peak RSS."""
    usage, out = scratch / "usage.json", scratch / "stdout.txt"
    with open(out, "wb") as fh:
        sh([sys.executable, "-c", SPAWNER, usage, *args], stdout=fh)
    spawned = json.loads(usage.read_text())
    return {"seconds": spawned["seconds"], "rss_mb": spawned["rss_kib"] / 1024}


def copy_package(scratch: Path) -> Path:
    """The large package the copy run of this repetition wrote (the verify ops run after it)."""
    rep = scratch.name.split("-", 1)[0]
    pack = scratch.parent / f"{rep}-large-qa2_copy" / PROJECT
    if not (pack / MANIFEST).is_file():
        raise BenchError(f"(the copy run {rep})", 1, f"{pack / MANIFEST}: missing, the copy run failed")
    return pack


def manifest_files(pack: Path) -> list[Path]:
    """The files ``manifest-sha256.txt`` lists (what ``qa2 verify`` and ``sha256sum -c`` hash)."""
    lines = (pack / MANIFEST).read_text().splitlines()
    return [pack / line.split("  ", 1)[1] for line in lines if "  " in line]


def package_info(pack: Path) -> dict[str, Any]:
    """Evict the package's files; its size, for the MB/s and µs/file columns."""
    fixtures.evict(tuple(fixtures.iter_files(pack)))
    listed = manifest_files(pack)
    return {"nbytes": sum(f.stat().st_size for f in listed), "nfiles": len(listed)}


def split_by_bytes(files: Sequence[Path], parts: int) -> list[list[Path]]:
    """``files`` in ``parts`` groups of about the same bytes (largest first, to the lightest)."""
    groups: list[list[Path]] = [[] for _ in range(parts)]
    sizes = [0] * parts
    for size, path in sorted(((f.stat().st_size, f) for f in files), reverse=True):
        i = sizes.index(min(sizes))
        groups[i].append(path)
        sizes[i] += size
    return groups


def hash_floor(files: Sequence[Path], scratch: Path) -> float:
    """Wall time of FLOOR_PROCS ``xargs -0 openssl dgst -sha256`` run at once, each over its
    share of ``files`` (split by bytes): what two cores of OpenSSL hashing take."""
    procs, lists = [], []
    for i, group in enumerate(split_by_bytes(files, FLOOR_PROCS)):
        lst = scratch / f"files-{i}.lst"
        lst.write_bytes(b"".join(bytes(p) + b"\0" for p in group))
        lists.append(lst)
    t0 = time.perf_counter()
    for lst in lists:
        procs.append(subprocess.Popen(["xargs", "-0", "-a", str(lst), "openssl", "dgst", "-sha256"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [(p.wait(), p.stderr.read() if p.stderr else "") for p in procs]
    took = time.perf_counter() - t0
    for p in procs:
        if p.stderr:
            p.stderr.close()
    bad = [(code, err) for code, err in errors if code]
    if bad:
        raise BenchError(f"xargs -0 -a LIST openssl dgst -sha256 (×{FLOOR_PROCS})", bad[0][0],
                         bad[0][1].strip())
    return took


def floor_src(case: Case) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        return {"seconds": hash_floor(case.files, scratch)}
    return run


def floor_pkg(scratch: Path) -> dict[str, Any]:
    pack = copy_package(scratch)
    info = package_info(pack)
    info["seconds"] = hash_floor(manifest_files(pack), scratch)
    return info


def sha256sum_check(scratch: Path) -> dict[str, Any]:
    pack = copy_package(scratch)
    info = package_info(pack)
    t0 = time.perf_counter()
    sh(["sha256sum", "-c", "--quiet", MANIFEST], cwd=pack)
    info["seconds"] = time.perf_counter() - t0
    return info


def verify_copy(scratch: Path) -> dict[str, Any]:
    pack = copy_package(scratch)
    info = package_info(pack)
    info.update(spawn([QA2, "verify", pack], scratch))
    return info


def qa2_cmd(*args: str | Path) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        return spawn([QA2, *args], scratch)
    return run


def compile_bytecode() -> None:
    """Byte-compile qa2core and the plugins, as ``pip install`` does for an installed qa2: the
    editable install here compiles nothing, and with PYTHONDONTWRITEBYTECODE set (it is, on
    the machines this runs on) every qa2 command would otherwise compile each module it imports
    (~90 ms for ``qa2 verify``), a cost no user of an installed qa2 pays."""
    sources = [REPO / "qa2core", *sorted((REPO / "plugins").glob("*/src"))]
    sh([sys.executable, "-m", "compileall", "-q", *sources])


def startup_seconds(runs: int = HELP_RUNS) -> float | None:
    """The best of ``runs`` wall times of ``qa2 --help`` (None when it fails)."""
    best = None
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            sh([QA2, "--help"])
        except BenchError as exc:
            say(f"qa2 --help FAILED: {exc}")
            return None
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
    return best


def wrong_scheduler_seconds() -> float | None:
    """Wall time of qa2 batch's scheduler check refusing a closed port (None if it accepts)."""
    import socket

    from qa2core.batch.probe import check_scheduler
    from qa2core.errors import UsageError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    try:
        check_scheduler(f"tcp://127.0.0.1:{port}")
    except UsageError:
        return time.perf_counter() - t0
    return None


@dataclass(frozen=True)
class Imports:
    """One command under ``python -X importtime``: its best total and what it imported."""

    key: str
    label: str
    max_ms: float
    forbidden: tuple[str, ...]
    runs_ms: tuple[float, ...] = ()  # total import time (sum of the self times) of each run
    imported: frozenset[str] = frozenset()  # top-level packages imported in any run
    largest: tuple[tuple[str, float], ...] = ()  # top-level imports by cumulative ms (best run)
    error: str = ""

    @property
    def best_ms(self) -> float:
        return min(self.runs_ms)

    @property
    def met(self) -> bool:
        return bool(self.runs_ms) and self.best_ms <= self.max_ms and \
            not self.imported & set(self.forbidden)


def parse_importtime(stderr: str) -> tuple[float, set[str], list[tuple[str, float]]]:
    """(total ms, top-level package names, top-level imports by cumulative ms) of
    ``-X importtime`` output; each line is ``import time: SELF_US | CUMULATIVE_US | NAME``, the
    name indented two spaces per nesting level."""
    total_us, names, top = 0, set(), []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        total_us += int(self_us)
        names.add(name.strip().split(".")[0])
        if not name.startswith("  "):
            top.append((name.strip(), int(cum_us) / 1000))
    return total_us / 1000, names, sorted(top, key=lambda t: -t[1])


def import_profiles(commands: dict[str, Callable[[int], list[str | Path]]]) -> list[Imports]:
    """Each IMPORT_BUDGET command, IMPORT_RUNS times under ``python -X importtime``."""
    out = []
    for key, label, max_ms, forbidden in IMPORT_BUDGET:
        runs, names, largest, error = [], set(), [], ""
        for i in range(IMPORT_RUNS):
            args = [sys.executable, "-X", "importtime", str(QA2), *map(str, commands[key](i))]
            done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, check=False)
            if done.returncode:
                rest = [ln for ln in done.stderr.splitlines() if not ln.startswith("import time:")]
                error = f"exit {done.returncode}: " + " / ".join(rest[-5:])
                break
            total, got, top = parse_importtime(done.stderr)
            if not runs or total < min(runs):
                largest = top[:4]
            runs.append(total)
            names |= got
        imp = Imports(key, label, max_ms, forbidden, tuple(runs), frozenset(names), tuple(largest),
                      error)
        watched = ", ".join(w for w in IMPORT_WATCH if w in names) or "none of " + "/".join(IMPORT_WATCH)
        say(f"imports: {label}: " + (f"FAILED: {error}" if error else
                                     f"best {imp.best_ms:.0f} ms; {watched}"))
        out.append(imp)
    return out


def prepare_sample(work: Path, case: Case, nopix: Any) -> tuple[Case, list[Imports]]:
    """Package the sample (and its copy without pixels) in copy mode, untimed; measure the
    import budget; the case, with the package as what its rows count."""
    packs = []
    for name, sample in (("sample", case.sample), ("sample-nopixels", nopix)):
        pack = work / name / "pack" / PROJECT
        pack.parent.mkdir(parents=True)
        sh([QA2, "package", sample.root, pack, "--mode", "copy", "--style", STYLE,
            "--readme", sample.readme_header, "--piscript", sample.piscript])
        packs.append(pack)
    sample = case.sample

    def fake(i: int) -> list[str | Path]:
        pack = work / "imports" / f"fake-{i}" / PROJECT
        pack.parent.mkdir(parents=True)
        return ["package", sample.root, pack, "--mode", "fake", "--style", STYLE,
                "--readme", sample.readme_header, "--piscript", sample.piscript]

    imports = import_profiles({"help": lambda i: ["--help"], "verify": lambda i: ["verify", packs[0]],
                               "verify_nopix": lambda i: ["verify", packs[1]], "fake": fake})
    files = tuple(fixtures.iter_files(packs[0]))
    note = (f"the sample reduction ({case.nfiles} files, {case.nbytes / MB:,.0f} MB) packaged in copy "
            "mode: the PACKPATH `qa2 verify` reads (warm cache)")
    return replace(case, files=files, nbytes=sum(f.stat().st_size for f in files), note=note,
                   package=packs[0]), imports


def gzip_file(pbs: tuple[Path, ...]) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        size = 0
        for pb in pbs:
            out = scratch / f"{pb.name}.gz"
            fileops.gzip_file(pb, out)
            size += out.stat().st_size
        return {"out_bytes": size}
    return run


def hash_files(case: Case) -> Callable[[Path], dict[str, Any]]:
    def run(scratch: Path) -> dict[str, Any]:
        for path in fixtures.iter_files(case.root):
            fileops.hash_file(path)
        return {}
    return run


def operations(case: Case, sample_runs: int = 5) -> list[Op]:
    tree = (case.nbytes, case.nfiles)
    if case.name == "sample":  # a package of ~26 files: process start and imports dominate
        return [
            Op(case, "qa2_help", "qa2 --help", "baseline", qa2_cmd("--help"), *tree, sample_runs),
            Op(case, "qa2_verify", "qa2 verify PACKPATH", "qa2",
               qa2_cmd("verify", case.package or case.root), *tree, sample_runs),
        ]
    if case.name == "fake200k":  # names and inodes only: the fake mode target
        return [
            Op(case, "cp_al", "cp -al", "baseline", cp("-al", case), *tree),
            Op(case, "qa2_fake", "qa2 package --mode fake", "qa2",
               qa2_package(case, "fake", as_json=False), *tree),
            Op(case, "qa2_plan", "qa2 package --dry-run", "qa2",
               qa2_package(case, "fake", dry_run=True, as_json=False), *tree),
            Op(case, "qa2_fake_json", "qa2 package --mode fake --json", "qa2",
               qa2_package(case, "fake", read_json=False), *tree),
        ]
    ops = [
        Op(case, "cp_al", "cp -al", "baseline", cp("-al", case), *tree),
        Op(case, "cp_a", "cp -a", "baseline", cp("-a", case), *tree),
        Op(case, "sha256sum", "sha256sum, all files", "baseline", hash_all(case, "sha256sum"), *tree),
        Op(case, "openssl", "openssl dgst -sha256, all files", "baseline",
           hash_all(case, "openssl", "dgst", "-sha256"), *tree),
        Op(case, "qa2_hard", "qa2 package --mode hard", "qa2", qa2_package(case, "hard"), *tree),
        Op(case, "qa2_copy", "qa2 package --mode copy", "qa2", qa2_package(case, "copy"), *tree),
        Op(case, "qa2_fake", "qa2 package --mode fake", "qa2", qa2_package(case, "fake"), *tree),
        Op(case, "qa2_plan", "qa2 package --dry-run", "qa2", qa2_package(case, "hard", True), *tree),
        Op(case, "hash_file", "fileops.hash_file, all files", "qa2", hash_files(case), *tree),
    ]
    if case.pbs:
        pb = (case.pb_bytes, len(case.pbs))
        ops.insert(4, Op(case, "gzip6", "gzip -6, PB files", "baseline", gzip6(case.pbs), *pb))
        ops.append(Op(case, "gzip_file", "fileops.gzip_file, PB files", "qa2", gzip_file(case.pbs), *pb))
    if case.name == "large":  # issue 21: the two-core floor, and verify of the copy run's package
        floor = f"openssl dgst -sha256, all files, {FLOOR_PROCS} processes"
        ops.insert(4, Op(case, "openssl2", floor, "baseline", floor_src(case), *tree))
        at = [op.key for op in ops].index("qa2_copy") + 1
        ops[at:at] = [
            Op(case, "qa2_verify", "qa2 verify PACKPATH", "qa2", verify_copy, *tree),
            Op(case, "sha256sum_c", f"sha256sum -c {MANIFEST}", "baseline", sha256sum_check, *tree),
            Op(case, "openssl2_pkg", f"openssl dgst -sha256, package files, {FLOOR_PROCS} processes",
               "baseline", floor_pkg, *tree),
        ]
    return ops


# --------------------------------------------------------------------------- measuring


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def measure(ops: Sequence[Op], repeat: int, work: Path) -> tuple[list[Result], dict[str, Any]]:
    """Run every op ``repeat`` times, round-robin; returns results and one qa2 JSON per case/mode."""
    results = {(op.case.name, op.key): Result(op.case.name, op.key, op.label, op.kind, op.nbytes,
                                              op.nfiles) for op in ops}
    reports: dict[str, Any] = {}
    for rep in range(1, repeat + 1):
        for op, run in [(o, n) for o in ops for n in range(o.runs)]:
            res = results[(op.case.name, op.key)]
            # Outputs stay until the end: the root file system here is mounted with `discard`,
            # and deleting gigabytes between runs stalls the next run's file creation for seconds.
            scratch = work / "out" / f"{rep}-{op.case.name}-{op.key}{f'-{run}' if run else ''}"
            scratch.mkdir(parents=True)
            try:
                if op.case.cold:
                    fixtures.evict(op.case.files)
                t0 = time.perf_counter()
                info = op.run(scratch)
                t1 = time.perf_counter()
                os.sync()
                t2 = time.perf_counter()
            except BenchError as exc:  # recorded; the next repetition tries again
                res.errors.append(f"run {rep}: {exc}")
                res.command = exc.command
                say(f"[{rep}/{repeat}] {op.case.name:5} {op.label:32} FAILED: {exc}")
                continue
            seconds = info.get("seconds", t1 - t0)  # qa2: its own lifetime, from its spawner
            res.cmd_s.append(seconds)
            res.sync_s.append(t2 - t1)
            res.out_bytes = info.get("out_bytes", res.out_bytes)
            res.nbytes, res.nfiles = info.get("nbytes", res.nbytes), info.get("nfiles", res.nfiles)
            res.rss_mb += [info["rss_mb"]] if "rss_mb" in info else []
            if "json" in info:
                reports.setdefault(f"{op.case.name}: {op.label}", info["json"])
            rss = f", peak RSS {info['rss_mb']:,.0f} MiB" if "rss_mb" in info else ""
            say(f"[{rep}/{repeat}] {op.case.name:8} {op.label:34} {seconds:7.2f} s  "
                f"(+sync {t2 - t1:.2f} s{rss})")
    return list(results.values()), reports


# --------------------------------------------------------------------------- report


def _package_summary(reports: dict[str, Any]) -> str:
    rows = []
    for name, rep in reports.items():
        actions: dict[str, int] = {}
        src = 0
        for f in rep.get("files", []):
            actions[f["action"]] = actions.get(f["action"], 0) + 1
            src += f.get("bytes", 0) if f["action"] != "readme" else 0
        acts = ", ".join(f"{k} {v}" for k, v in sorted(actions.items()))
        rows.append([name, rep.get("plugin") or "—", f"{len(rep.get('files', [])):,}", acts,
                     f"{src / 1e6:,.1f}", f"{(rep.get('package_bytes') or 0) / 1e6:,.1f}",
                     str(len(rep.get("warnings", [])) + len(rep.get("findings", [])))])
    return report.table(["run", "plugin", "entries", "planned actions", "source MB read",
                         "package MB", "warnings+findings"], rows, right_from=2)


def overlap(a: Result, b: Result) -> bool:
    """True when the min–max ranges of two results overlap (the difference is within noise)."""
    return min(a.cmd_s) <= max(b.cmd_s) and min(b.cmd_s) <= max(a.cmd_s)


def reading(results: Sequence[Result], cases: dict[str, Case]) -> str:
    """The "reading" bullets, computed from this run's numbers (a bullet is left out when a
    measurement it needs failed or was not run)."""
    ok = {(r.case, r.key): r for r in results if r.ok}

    def med(case: str, *keys: str) -> float:
        return sum(ok[(case, k)].median for k in keys)

    def have(case: str, *keys: str) -> bool:
        return case in cases and all((case, k) in ok for k in keys)

    out: list[str] = []
    if have("large", "qa2_hard", "cp_al", "sha256sum", "openssl", "hash_file", "gzip_file", "qa2_plan"):
        big, hard = cases["large"], med("large", "qa2_hard")
        parts = {"hashing (`hash_file`, all files, one thread)": med("large", "hash_file"),
                 "PB compression (`gzip_file`)": med("large", "gzip_file"),
                 "CLI start + scan + plan (`--dry-run`)": med("large", "qa2_plan")}
        out.append(
            f"- **Large files: hashing dominates.** `cp -al` links the {big.nbytes / 1e9:.1f} GB in "
            f"{med('large', 'cp_al'):.2f} s; qa2 hard mode takes {hard:.1f} s because it reads every "
            "linked byte once for the sha256 manifest and compresses the PBs. Its parts, measured "
            "alone: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + " (hard mode hashes "
            f"on a pool of {JOBS} threads, so the parts overlap). "
            f"Against `cp -al` + `sha256sum` it is {hard / med('large', 'cp_al', 'sha256sum'):.2f}×, "
            f"against `cp -al` + `openssl dgst -sha256` {hard / med('large', 'cp_al', 'openssl'):.2f}×"
            f" ({hard - med('large', 'cp_al', 'openssl'):+.1f} s; PB compression plus CLI start and "
            f"planning are {med('large', 'gzip_file', 'qa2_plan'):.1f} s, which the shell pair does "
            "not do)."
        )
        sha_rate = big.nbytes / med("large", "sha256sum") / 1e6
        ssl_rate = big.nbytes / med("large", "openssl") / 1e6
        out.append(
            f"- **`sha256sum` is a slow baseline here.** coreutils {sha_rate:,.0f} MB/s against "
            f"{ssl_rate:,.0f} MB/s for `openssl dgst -sha256` and "
            f"{big.nbytes / med('large', 'hash_file') / 1e6:,.0f} MB/s for Python's hashlib (also "
            "OpenSSL) on the same files. This `sha256sum` does not link OpenSSL (see `ldd`) and "
            "its portable C code leaves the CPU's SHA-NI instructions unused, so it is CPU-bound "
            "where the others wait for the disk. Ratios against `sha256sum` flatter qa2; the "
            "`openssl` rows are the fair hashing baseline."
        )
    if have("large", "qa2_copy", "cp_a", "openssl"):
        copy, cpa = ok[("large", "qa2_copy")], ok[("large", "cp_a")]
        ratio, ratio_synced = copy.median / cpa.median, copy.median_synced / cpa.median_synced
        if overlap(copy, cpa):
            verdict = "not distinguishable from `cp -a` on this VM (the run ranges overlap)"
        else:
            verdict = "slower than `cp -a`" if ratio > 1 else "faster than `cp -a`"
        out.append(
            f"- **Copy mode is {verdict}**: median {copy.median:.1f} s (range {copy.spread}; "
            f"{copy.median_synced:.1f} s incl. sync) against {cpa.median:.1f} s (range {cpa.spread}; "
            f"{cpa.median_synced:.1f} s), ratio {ratio:.2f}× ({ratio_synced:.2f}× incl. sync). "
            "`cp -a` moves the bytes inside the kernel (`copy_file_range`) and checks nothing; qa2 "
            "reads each 1 MiB chunk into user space, hashes it and writes it back, on "
            f"{JOBS} threads, and compresses the PBs instead of copying them. Against what it "
            "replaces, `cp -a` + `openssl dgst -sha256` (which reads the data a second time), "
            f"qa2 copy is {copy.median / med('large', 'cp_a', 'openssl'):.2f}×."
        )
    if have("large", "qa2_verify", "sha256sum_c", "openssl2_pkg"):
        ver = ok[("large", "qa2_verify")]
        floor, check = med("large", "openssl2_pkg"), med("large", "sha256sum_c")
        text = (
            f"- **Verify reads the package once.** `qa2 verify` of the large copy-mode package "
            f"({ver.nfiles:,} listed files, {ver.nbytes / 1e9:.2f} GB, cold) takes {ver.median:.2f} s "
            f"(runs {ver.spread}, peak RSS {max(ver.rss_mb):,.0f} MiB): {ver.median / floor:.2f}× "
            f"the two-core `openssl` floor ({floor:.2f} s) and {ver.median / check:.2f}× "
            f"`sha256sum -c` ({check:.2f} s, one core, no SHA-NI)."
        )
        if have("sample", "qa2_verify", "qa2_help"):
            sv, hp = ok[("sample", "qa2_verify")], ok[("sample", "qa2_help")]
            text += (f" Its fixed cost shows on the sample package ({sv.nfiles} files, warm): "
                     f"{sv.median:.2f} s against {hp.median:.2f} s for `qa2 --help`, so "
                     f"{sv.median - hp.median:.2f} s of each verify is imports, plugins and "
                     "checks beyond the CLI's start (see Import budget).")
        out.append(text)
    if have("large", "gzip_file", "gzip6"):
        gzf, gz6 = ok[("large", "gzip_file")], ok[("large", "gzip6")]
        if gzf.out_bytes and gz6.out_bytes:
            out.append(
                f"- **Compression: `gzip_file` is {gz6.median / gzf.median:.1f}× as fast as `gzip -6`.** "
                f"isal level 2 compresses the PBs at {report.mbps(gzf.nbytes, gzf.median)} MB/s, `gzip -6` "
                f"at {report.mbps(gz6.nbytes, gz6.median)} MB/s, for an output "
                f"{(gzf.out_bytes / gz6.out_bytes - 1) * 100:+.1f} % the size of gzip's."
            )
    if have("small", "qa2_hard", "qa2_copy", "qa2_fake", "qa2_plan", "cp_al", "cp_a", "openssl",
            "sha256sum"):
        small = cases["small"]
        us = {k: ok[("small", k)].median / small.nfiles * 1e6
              for k in ("qa2_hard", "qa2_copy", "qa2_fake", "qa2_plan", "cp_al", "cp_a", "openssl",
                        "sha256sum")}
        out.append(
            f"- **Many small files: qa2 pays per file, less than the shell pairs.** For "
            f"{small.nfiles:,} files: qa2 hard {us['qa2_hard']:.0f} µs/file, copy "
            f"{us['qa2_copy']:.0f}, fake {us['qa2_fake']:.0f} (the dry run, which only scans and "
            f"plans, {us['qa2_plan']:.0f}), against `cp -al` {us['cp_al']:.0f}, `cp -a` "
            f"{us['cp_a']:.0f}, `sha256sum` {us['sha256sum']:.0f} and `openssl` {us['openssl']:.0f}: "
            f"hard mode is {us['qa2_hard'] / (us['cp_al'] + us['sha256sum']):.2f}× `cp -al` + "
            f"`sha256sum`, copy mode {us['qa2_copy'] / (us['cp_a'] + us['sha256sum']):.2f}× `cp -a` + "
            "`sha256sum`. Cold small files wait on the disk's latency, not its bandwidth: qa2 "
            f"hints each batch's next {fileops.AHEAD} files to the kernel (`POSIX_FADV_WILLNEED`) "
            "before reading them, so their reads are queued together, where `sha256sum` reads one "
            "file after the other. The rest is Python work per file: scan, rules, plan, then "
            "link or copy, hash, change check, a manifest line and a ticket entry."
        )
    if have("fake200k", "qa2_fake", "qa2_plan", "cp_al"):
        many, fake = cases["fake200k"], ok[("fake200k", "qa2_fake")]
        plan, cpal = ok[("fake200k", "qa2_plan")], ok[("fake200k", "cp_al")]
        verdict = "meets" if fake.median <= FAKE_MAX_S and max(fake.rss_mb) <= FAKE_MAX_RSS_MIB \
            else "misses"
        text = (
            f"- **Fake mode on {many.nfiles:,} files {verdict} the target "
            f"(≤ {FAKE_MAX_S:g} s, ≤ {FAKE_MAX_RSS_MIB:g} MiB):** {fake.median:.1f} s (runs "
            f"{fake.spread}), peak RSS {max(fake.rss_mb):,.0f} MiB; `cp -al` of the same tree "
            f"{cpal.median:.1f} s, so {fake.median / cpal.median:.1f}× `cp -al`. The dry run "
            f"(CLI start, scan, rules, plan and validation, then the plan printed; no file written) "
            f"takes {plan.median:.1f} s and {max(plan.rss_mb):,.0f} MiB: the fake run spends "
            f"{fake.median - plan.median:+.1f} s beyond it on the {many.nfiles:,} empty files "
            "(made with `mknod`, relative to each directory opened once, on "
            f"{JOBS} threads each in its own stretch of the plan), the README, journal and report. "
        )
        if plan.median >= fake.median / 2:
            text += ("Most of the time is the Python pipeline's, several objects per file (scan "
                     "item, rule match, placement, planned file), not the file creation's. ")
        share = max(plan.rss_mb) / max(fake.rss_mb)
        text += (f"Memory is the plan's: the dry run, which writes nothing, peaks at {share:.0%} of "
                 "the fake run." if share >= 0.9 else
                 f"Writing adds {max(fake.rss_mb) - max(plan.rss_mb):,.0f} MiB to the dry run's peak.")
        if ("fake200k", "qa2_fake_json") in ok:
            js = ok[("fake200k", "qa2_fake_json")]
            text += (f" With `--json` (a {many.nfiles:,}-entry report on stdout) the run takes "
                     f"{js.median:.1f} s and {max(js.rss_mb):,.0f} MiB.")
        out.append(text)
    if have("large", "qa2_hard", "qa2_copy", "cp_a", "openssl"):
        big = cases["large"]

        def minutes(*keys: str, synced: bool = False) -> float:
            t = sum(ok[("large", k)].median_synced if synced else ok[("large", k)].median for k in keys)
            return 200e9 / (big.nbytes / t) / 60

        out.append(
            f"- **A 200 GB package on this VM**, extrapolating this mix linearly (≈"
            f"{big.pb_bytes / big.nbytes * 100:.0f} % of it PB to "
            f"compress): hard mode ≈ {minutes('qa2_hard'):.0f} min (`cp -al` + `openssl`: "
            f"{minutes('cp_al', 'openssl'):.0f} min), copy mode ≈ {minutes('qa2_copy', synced=True):.0f} min "
            f"until on disk (`cp -a` + `openssl`: {minutes('cp_a', 'openssl', synced=True):.0f} min). "
            "Both are bound by the disk (reads, and writes for copy); the checksum manifest costs one "
            "read of every byte, which no packaging mode avoids."
        )
    return "\n".join(out) or "Not enough successful measurements for a reading (see Failures)."


def _noise_note(results: Sequence[Result]) -> str:
    timed = [r for r in results if len(r.cmd_s) > 1 and min(r.cmd_s) > 0.1]
    if not timed:
        return ""
    worst = max(timed, key=lambda r: max(r.cmd_s) / min(r.cmd_s))
    return (f"The widest spread was {max(worst.cmd_s) / min(worst.cmd_s):.1f}× between runs of "
            f"`{worst.label}` ({worst.case}); ratios closer to 1 than the min–max ranges allow are noise.")


def targets(results: Sequence[Result], previous: tuple[str, dict[tuple[str, str], float]],
            load: str, startup: float | None = None, imports: Sequence[Imports] = (),
            scheduler: float | None = None) -> str:
    """The engine issue's targets, each with what this run measured and whether it is met.
    ``load`` is this run's 1-minute load average at its start (the previous record's is in
    ``previous``): other work on the machine slows the CPU-bound parts of qa2 more than `cp`."""
    ok = {(r.case, r.key): r for r in results if r.ok}
    rows = []
    if startup is not None:
        rows.append([f"start-up: `qa2 --help` ≤ {HELP_MAX_S:g} s (best of {HELP_RUNS})",
                     f"{startup:.3f} s", _met(startup <= HELP_MAX_S)])
    if scheduler is not None:
        rows.append([f"batch: a wrong `--scheduler` (closed port) refused ≤ {SCHEDULER_MAX_S:g} s",
                     f"{scheduler:.2f} s", _met(scheduler <= SCHEDULER_MAX_S)])
    if ("fake200k", "qa2_fake") in ok and ("fake200k", "cp_al") in ok:
        fake, cpal = ok[("fake200k", "qa2_fake")], ok[("fake200k", "cp_al")]
        rows.append([f"fake200k: `qa2 package --mode fake` ≤ {FAKE_MAX_S:g} s",
                     f"{fake.median:.2f} s (runs {fake.spread}); `cp -al` {cpal.median:.2f} s, "
                     f"ratio {fake.median / cpal.median:.2f}×", _met(fake.median <= FAKE_MAX_S)])
        rows.append([f"fake200k: peak RSS ≤ {FAKE_MAX_RSS_MIB:g} MiB",
                     f"{max(fake.rss_mb):,.0f} MiB (largest of {len(fake.rss_mb)} runs)",
                     _met(max(fake.rss_mb) <= FAKE_MAX_RSS_MIB)])
    for case, key, bases, limit in TARGET_RATIOS:
        if (case, key) in ok and all((case, b) in ok for b in bases):
            q, base = ok[(case, key)], sum(ok[(case, b)].median for b in bases)
            names = " + ".join(ok[(case, b)].label for b in bases)
            got = f"{q.median / base:.2f}× ({q.median:.2f} s against {base:.2f} s"
            if len(bases) == 1 and len(q.cmd_s) > 3:  # many runs: the best against the best too
                b = ok[(case, bases[0])]
                got += (f"; medians of {len(q.cmd_s)} runs; best {min(q.cmd_s):.3f} s against "
                        f"{min(b.cmd_s):.3f} s, {min(q.cmd_s) / min(b.cmd_s):.2f}×")
            rows.append([f"{case}: `{q.label}` ≤ {limit:g}× ({names})", got + ")",
                         _met(q.median <= limit * base)])
    for imp in imports:
        rows.append([f"imports: {imp.label} ≤ {imp.max_ms:g} ms, imports none of "
                     f"{', '.join(imp.forbidden)}", _imports_got(imp),
                     "**no** (failed)" if imp.error else _met(imp.met)])
    when, before = previous
    for key in ("qa2_hard", "qa2_copy", "qa2_fake", "qa2_verify"):
        r = ok.get(("large", key))
        if r is not None and ("large", r.label) in before:
            old = before[("large", r.label)]
            verdict = "yes" if r.median <= old else "**no**" if min(r.cmd_s) > old else \
                "within noise (the previous median is inside this run's range)"
            rows.append([f"large: `{r.label}` no slower than the previous record ({when})",
                         f"{r.median:.2f} s (runs {r.spread}, load {load}) against {old:.2f} s",
                         verdict])
    if not rows:
        return "No target could be checked (cases not run, or their runs failed)."
    return report.table(["target", "this run", "met"], rows, right_from=3)


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _imports_got(imp: Imports) -> str:
    if imp.error:
        return f"failed: {imp.error}"
    heavy = [w for w in IMPORT_WATCH if w in imp.imported]
    return (f"{imp.best_ms:.0f} ms (best of {len(imp.runs_ms)}); imported "
            + (", ".join(heavy) if heavy else "none of " + ", ".join(IMPORT_WATCH)))


def import_section(imports: Sequence[Imports]) -> str:
    """The "Import budget" section: each command's imports against its budget."""
    rows = []
    for imp in imports:
        if imp.error:
            rows.append([imp.label, "failed", *("—" for _ in IMPORT_WATCH), imp.error,
                         f"≤ {imp.max_ms:g} ms", "**no**"])
            continue
        runs = ", ".join(f"{t:.0f}" for t in imp.runs_ms)
        largest = "; ".join(f"`{n}` {ms:.0f}" for n, ms in imp.largest)
        flags = ["**yes**" if w in imp.imported and w in imp.forbidden else
                 "yes" if w in imp.imported else "no" for w in IMPORT_WATCH]
        budget = f"≤ {imp.max_ms:g} ms; not " + ", ".join(imp.forbidden)
        rows.append([imp.label, f"{imp.best_ms:.0f} ({runs})", *flags, largest, budget,
                     _met(imp.met)])
    return "\n".join([
        "## Import budget",
        "",
        f"Each command run {IMPORT_RUNS} times under `python -X importtime` (the venv's `qa2` "
        "script), after the sample is built and before the big cases are: total import time is "
        "the sum of the self times of every import, lazy ones included (best run; all runs in "
        "brackets; `-X importtime` itself adds a little). A package counts as imported when any "
        "of its modules is, in any run (bold: the budget forbids it). Largest: the top-level "
        "imports of the best run by cumulative ms. The budget (IMPORT_BUDGET in bench/run.py) "
        "follows issue 21's examples: `--help` ≤ 150 ms; a package without pixels is verified "
        "without numpy or astropy (numpy is allowed where `verify` checks FITS pixel values); fake "
        "mode writes empty files, so it is held to no numpy either.",
        "",
        report.table(["command", "import ms (best; runs)", *IMPORT_WATCH,
                      "largest top-level imports (ms)", "budget", "met"], rows, right_from=2),
    ])


def render(args: argparse.Namespace, machine: list[tuple[str, str]], cases: dict[str, Case],
           results: list[Result], reports: dict[str, Any], started: datetime, runtime_s: float,
           load: tuple[str, str], previous: tuple[str, dict[tuple[str, str], float]],
           startup: float | None = None, imports: Sequence[Imports] = (),
           scheduler: float | None = None) -> str:
    by_key = {(r.case, r.key): r for r in results}
    ratios = [r for r in (*RATIOS_SAMPLE, *RATIOS_LARGE, *RATIOS_SMALL, *RATIOS_MANY)
              if r.case in cases]
    case_rows = [[c.name, c.note, f"{c.nfiles:,}", f"{c.nbytes / 1e6:,.{0 if c.nbytes >= 10e6 else 1}f}"]
                 for c in cases.values()]
    failures = [r for r in results if r.errors]
    out = [
        "# qa2 benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); do not edit by hand, re-run instead. "
        "Every number below comes from one run: qa2 and its baselines on the same data, "
        "the same disk and the same cache state. Ratios > 1 mean qa2 is slower.",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, {runtime_s / 60:.1f} min in all (data build included).",
        "",
        "## Machine",
        "",
        report.table(["", ""], [[k, v] for k, v in machine], right_from=2),
        "",
        f"Load average (1/5/15 min) at start {load[0]}, at end {load[1]}: other work on the machine "
        f"during the run shows up as noise. {_noise_note(results)}",
        "",
        "## Parameters",
        "",
        f"`bench/run.py --size-gb {args.size_gb:g} --pb-mb {args.pb_mb:g} --big-files {args.big_files} "
        f"--small-files {args.small_files} --small-kib {args.small_kib} --many-files {args.many_files} "
        f"--many-ebs {args.many_ebs} --many-kib {args.many_kib} --settle {args.settle:g} "
        f"--repeat {args.repeat} --sample-runs {args.sample_runs} --cases {','.join(cases)}`; "
        f"qa2 runs with `--style {STYLE}` and its default `--jobs` (4).",
        "",
        report.table(["case", "content", "files", "MB"], case_rows, right_from=2),
        "",
        "## Targets",
        "",
        targets(results, previous, load[0].split(" / ")[0], startup, imports, scheduler),
        "",
        *([import_section(imports), ""] if imports else []),
        "## Ratios to the baselines",
        "",
        report.ratios_table(ratios, by_key),
        "",
        "## Timings",
        "",
        f"Median of {args.repeat} runs (sample: {args.repeat} × {args.sample_runs}). "
        "MB/s divides the case's total bytes (or the PBs', for "
        "compression) by the median time; µs/file divides by the case's file count. "
        "\"incl. sync\" adds the `sync` right after the run, i.e. until the written data is on disk. "
        "Peak RSS is the qa2 process's (`wait4`'s `ru_maxrss`, the largest of the runs; MiB).",
        "",
        report.timings_table(results),
        "",
        "## What qa2 did",
        "",
        "One `--json` report per case and mode (first run). \"source MB read\" counts the source "
        "bytes of the planned entries; MSs and ASDMs in the sample are not delivered (`noms`). "
        "fake200k runs without `--json` (its report, one entry per file, is timed, not read).",
        "",
        _package_summary(reports),
        "",
    ]
    if failures:
        out += ["## Failures", ""]
        for r in failures:
            out += [f"{r.case} / {r.label}: {len(r.errors)} of {args.repeat} runs failed. Command:", "",
                    "```", r.command, "```", "", "Errors:", "", "```", *r.errors, "```", ""]
    out += [
        "## Reading",
        "",
        reading(results, cases),
        "",
        "## Method",
        "",
        "- Data: built with `qa2core.testing.sampledata.build_manual_reduction` (real CASA MSs, caltables "
        "and images from casatools) plus bulk files (`bench/fixtures.py`). The big cubes are valid "
        "FITS (astropy header, float32 data from `write_pbcor_fits`, repeated); the PBs are "
        "`write_pb_fits` (Gaussian, NaN below 0.2), one per pbcor cube and of its shape (qa2 "
        "rejects a PB of another shape: `product.pb_shape`), which qa2 ships as `.pb.fits.gz`; "
        "the rest of the bytes are image cubes (`.image.fits`, no PB). Until 2026-12-06 the "
        "large case was 3 pbcor cubes of ~570 MB with 84 MB PBs of fewer channels: same bytes "
        "hashed and compressed, so the previous-record rows still compare like with like.",
        "- Scratch space is a temporary directory on the same file system as the repository, "
        "removed at the end (also on Ctrl-C or SIGTERM).",
        "- Cache: `/proc/sys/vm/drop_caches` is not writable in this container, so before every run "
        "the bench syncs and evicts each source file with `posix_fadvise(POSIX_FADV_DONTNEED)`: inputs "
        "are read from disk, programs and directory entries stay cached. The VM's host may still "
        "cache the virtual disk, so \"disk\" reads can be faster than on bare metal.",
        "- Each run writes into its own empty directory. Outputs are kept until the end of the "
        "bench: the root file system is mounted with `discard`, and deleting gigabytes or "
        "thousands of files between runs made the next run's file creation seconds slower. "
        "Operations run round-robin, so slow drift spreads over all of them.",
        "- `qa2 package` is timed as a subprocess (CLI start included), like `cp`, with `--json` "
        "(its report fills \"What qa2 did\"; fake200k: see there); `hash_file` and `gzip_file` are "
        "timed in the bench process. Each `qa2` is started by a small Python spawner (`posix_spawn`, "
        "then `wait4`), which reports its wall time and peak RSS: Linux keeps the spawning "
        "process's RSS high-water mark across `exec`, so qa2 is not started from the bench "
        "process itself (its file lists would count); the spawner's own ~10 MiB is the floor.",
        "- fake200k: a manual SB of 10 EBs (real sample MSs, caltables, images and the "
        "`<EB>.ms.scriptForCalibration.py` of each) whose `Calibration_X*/<EB>.qa2/` folders hold "
        "the plots, flat. It reads no file data, so it is not evicted. File creation on this VM "
        "varies a lot from run to run (ext4 with `discard`; slow for minutes after large "
        "deletes): after the data is built the bench syncs and waits `--settle` seconds, and "
        "deletes nothing until the end; compare qa2 with `cp -al` of the same run.",
        "- `gzip -6` writes its output to a file on the same disk, as `gzip_file` does. The hashing "
        "baselines are `find ROOT -type f -print0 | xargs -0 sha256sum` (or `openssl dgst -sha256`) "
        "with output to /dev/null.",
        f"- The two-core hashing floor (\"{FLOOR_PROCS} processes\"): the files split into "
        f"{FLOOR_PROCS} lists of about the same bytes (largest file first, to the lighter list), "
        f"then {FLOOR_PROCS} `xargs -0 -a LIST openssl dgst -sha256` started at once; the wall time "
        "until both end. On the source tree it is hard mode's baseline; on the package, "
        "`qa2 verify`'s.",
        "- `qa2 verify PACKPATH` (large) verifies, in each repetition, the package that "
        f"repetition's copy run wrote (default `--jobs`), against `sha256sum -c {MANIFEST}` in "
        "PACKPATH and the floor over the files the manifest lists; the package's files are "
        "evicted before each of the three. MB/s and µs/file count the listed files.",
        f"- sample: the sample reduction packaged once in copy mode (untimed); `qa2 --help` and "
        f"`qa2 verify PACKPATH` run {args.sample_runs} times each per repetition from the warm "
        "cache (start-up, imports and per-file work, not the disk, are what this compares).",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write the Markdown report here (e.g. docs/benchmarks.md)")
    p.add_argument("--size-gb", type=float, default=2.0, help="total size of the large case (GB)")
    p.add_argument("--pb-mb", type=float, default=256.0, help="total size of the PB FITS files (MB)")
    p.add_argument("--big-files", type=int, default=3, help="number of big pbcor FITS cubes")
    p.add_argument("--small-files", type=int, default=20_000, help="files in the small-files case")
    p.add_argument("--small-kib", type=int, default=4, help="size of each small file (KiB)")
    p.add_argument("--repeat", type=int, default=3, help="runs per operation (the median is reported)")
    p.add_argument("--many-files", type=int, default=200_000, help="plots in the fake200k case")
    p.add_argument("--many-ebs", type=int, default=10, help="EBs (and QA folders) of the fake200k case")
    p.add_argument("--many-kib", type=int, default=2, help="size of each fake200k plot (KiB)")
    p.add_argument("--previous", type=Path,
                   help="the earlier report the large case is held to (default: --out, before it is "
                        "overwritten)")
    p.add_argument("--settle", type=float, default=10.0,
                   help="seconds to wait (after a sync) between building the data and timing")
    p.add_argument("--sample-runs", type=int, default=5,
                   help="runs of qa2 --help and qa2 verify on the sample package per repetition")
    p.add_argument("--cases", default="sample,large,small,fake200k",
                   help="comma-separated subset of sample,large,small,fake200k,batch "
                        "(batch: bench/batch.py)")
    p.add_argument("--workdir", type=Path, default=REPO.parent,
                   help="where the temporary directory goes (default: the repository's parent)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.sample_runs < 1 or args.big_files < 1 or args.size_gb <= 0 or args.pb_mb <= 0:
        p.error("--repeat, --big-files, --size-gb and --pb-mb must be positive")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _loadavg() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("CASASITECONFIG", str(REPO / ".venv" / "casasiteconfig.py"))
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    wanted = {c.strip() for c in args.cases.split(",") if c.strip()}
    if "batch" in wanted:  # bench/batch.py: qa2 batch against a shell loop of qa2 package
        wanted.discard("batch")
        code = batch.main(["--repeat", str(args.repeat), "--workdir", str(args.workdir),
                           *(["--out", str(args.out)] if args.out else [])])
        if code or not wanted:
            return code
    started, t_start, load_start = datetime.now(timezone.utc), time.perf_counter(), _loadavg()

    out_dir = (args.out.parent if args.out else REPO).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if os.stat(args.workdir).st_dev != os.stat(out_dir).st_dev:
        say(f"warning: {args.workdir} and {out_dir} are on different file systems")
    # The source, plus two full copies (cp -a, qa2 copy) per repetition, kept until the end.
    need = ((1 + 2 * args.repeat) * args.size_gb * 1e9 if "large" in wanted else 0) + 2e9
    need += args.many_files * args.many_kib * 1024 * 1.2 if "fake200k" in wanted else 0
    if fixtures.free_bytes(args.workdir) < need:
        say(f"error: {args.workdir} has less than {need / 1e9:.1f} GB free")
        return 1

    compile_bytecode()
    startup = startup_seconds()  # before the data build loads the machine
    scheduler = wrong_scheduler_seconds()
    say(f"qa2 batch, wrong --scheduler: {'accepted!' if scheduler is None else f'{scheduler:.2f} s'}"
        f" (target ≤ {SCHEDULER_MAX_S:g} s)")
    if startup is not None:
        say(f"qa2 --help: {startup:.3f} s (best of {HELP_RUNS}; target ≤ {HELP_MAX_S:g} s"
            f"{'' if startup <= HELP_MAX_S else ': MISSED'})")
    work = Path(tempfile.mkdtemp(prefix=".qa2-bench-", dir=args.workdir))
    try:
        say(f"building data in {work}")
        cases: dict[str, Case] = {}
        imports: list[Imports] = []
        if "sample" in wanted:  # first: the import budget is measured before the big builds
            sample, nopix = fixtures.build_sample(work)
            cases["sample"], imports = prepare_sample(work, sample, nopix)
        if "large" in wanted:
            cases["large"] = fixtures.build_large(work, args.size_gb, args.pb_mb, args.big_files)
        if "small" in wanted:
            cases["small"] = fixtures.build_small(work, args.small_files, args.small_kib)
        if "fake200k" in wanted:
            cases["fake200k"] = fixtures.build_many(work, args.many_files, args.many_ebs,
                                                    args.many_kib)
        for c in cases.values():
            say(f"case {c.name}: {c.nfiles:,} files, {c.nbytes / MB:,.0f} MB ({c.note})")
        say(f"data built in {time.perf_counter() - t_start:.0f} s; settling {args.settle:g} s")
        os.sync()  # the build's writes (and a previous run's deletes) off the timed part
        time.sleep(args.settle)
        ops = [op for c in cases.values() for op in operations(c, args.sample_runs)]
        results, reports = measure(ops, args.repeat, work)
    except KeyboardInterrupt:
        say("interrupted; removing the temporary data")
        return 130
    finally:
        say(f"removing {work}")
        shutil.rmtree(work, ignore_errors=True)

    runtime = time.perf_counter() - t_start
    previous = report.previous_medians(args.previous or args.out) if args.previous or args.out \
        else ("", {})
    text = render(args, report.machine(args.workdir, REPO), cases, results, reports, started, runtime,
                  (load_start, _loadavg()), previous, startup, imports, scheduler)
    print(text)
    if args.out:
        args.out.write_text(batch.keep_section(args.out, text))
        say(f"wrote {args.out}")
    say(f"total runtime {runtime:.0f} s")
    return 1 if any(r.errors for r in results) or any(i.error for i in imports) else 0


if __name__ == "__main__":
    sys.exit(main())
