"""The jobs file: a ``[defaults]`` table, then one ``[[job]]`` per run, checked whole before
anything starts. Keys are the CLI's (``--ous-uids`` is ``ous_uids``); every problem is one line
naming the job and the key; relative paths are relative to the jobs file's directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa2core.batch import INSTALL_HINT
from qa2core.errors import Qa2Error, UsageError
from qa2core.planning import paths, requests

if sys.version_info >= (3, 11):
    import tomllib
else:  # the batch extra brings tomli on 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

# The keys of each command: its positional arguments, then its options, by the names of
# qa2core.planning.requests (the CLI's, "-" written "_"): parsed and checked there, as the CLI does.
OPTIONS: dict[str, tuple[str, ...]] = {c: requests.option_names(c) for c in requests.COMMANDS}
POSITIONAL: dict[str, tuple[str, ...]] = {c: requests.positional(c) for c in requests.COMMANDS}
NOT_HASHED = ("jobs",)  # threads change how fast, not what is written
# Inputs that a job it follows (after) may produce: checked where the job runs, not up front
# when they do not exist yet and lie in the PACKPATH (STAGED_ROOT) of a job it follows.
PRODUCIBLE = {"package": ("origpath",), "stage": ("pipeline_root",), "verify": ("packpath",),
              "tar": ("packpath",)}


class JobsFileError(UsageError):
    """The jobs file is refused: one line per problem (exit 2, like any bad option)."""


@dataclass(frozen=True)
class Job:
    number: int  # 1-based, in file order
    id: str  # ``name``, or ``command:PACKPATH`` as written
    command: str
    args: dict[str, Any]  # checked; paths absolute
    target: Path  # PACKPATH (STAGED_ROOT for stage)
    source: Path | None  # ORIGPATH (PIPELINE_ROOT for stage); None for verify and tar
    fs: str  # mount point of the file system the job writes to
    spec_hash: str
    named: bool = False
    after: tuple[str, ...] = ()  # the jobs (ids) it follows

    @property
    def writes_pack(self) -> bool:
        """It writes its PACKPATH (package, stage); verify and tar only read it."""
        return self.command in ("package", "stage")

    @property
    def written(self) -> Path | None:
        """Where it writes: PACKPATH, or a tar job's output directory; None for verify."""
        if self.command == "tar":
            return Path(self.args.get("out") or self.target.parent)
        return self.target if self.writes_pack else None

    @property
    def label(self) -> str:
        return f"job {self.number} ({self.id})"

    @property
    def slug(self) -> str:
        """The job's file name in the campaign's log directory: its name when that is a plain
        file name, else the name made one, with a short hash of the id to keep it unique."""
        plain = re.sub(r"[^A-Za-z0-9._-]+", "_", self.id).strip("._")[:60]
        if self.named and plain == self.id:
            return plain
        return f"{plain or self.command}-{hashlib.sha256(self.id.encode()).hexdigest()[:8]}"

    @property
    def writes(self) -> bool:
        return self.command != "verify"


@dataclass(frozen=True)
class Campaign:
    path: Path
    jobs: tuple[Job, ...]

    @property
    def ledger(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(".toml") + ".ledger.jsonl")

    @property
    def logs(self) -> Path:
        """The jobs' logs, beside the jobs file and its ledger (never beside a PACKPATH, whose
        parent a worker must find, not make)."""
        return self.path.with_name(self.path.name.removesuffix(".toml") + ".logs")

    def log(self, job: Job) -> Path:
        return self.logs / f"{job.slug}.log"


def mount_point(path: Path) -> str:
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return str(p)


def _job(number: int, raw: Any, defaults: dict[str, Any], base: Path,
         problems: list[str], produced: tuple[Path, ...] = (), after: tuple[str, ...] = ()
         ) -> Job | None:
    if not isinstance(raw, dict):
        problems.append(f"job {number}: must be a table ([[job]])")
        return None
    name = raw.get("name")
    label = f"job {number}" + (f" ({name})" if isinstance(name, str) and name else "")
    command = raw.get("command")
    if command not in OPTIONS:
        problems.append(f"{label}: key 'command': {command!r} is not one of "
                        f"{', '.join(OPTIONS)}" if command is not None else
                        f"{label}: key 'command' missing (one of {', '.join(OPTIONS)})")
        return None
    options = OPTIONS[command]
    if name is not None and not (isinstance(name, str) and name.strip()):
        problems.append(f"{label}: key 'name': must be a non-empty string")
    merged = {k: v for k, v in defaults.items() if k in options and k not in POSITIONAL[command]}
    merged.update((k, v) for k, v in raw.items() if k not in ("command", "name", "after"))
    before = len(problems)
    for key in merged:
        if key not in options:
            problems.append(f"{label}: key {key!r}: unknown for {command}; valid: name, command, "
                            f"{', '.join(options)}")
    missing = [k for k in POSITIONAL[command] if k not in merged]
    for key in missing:
        problems.append(f"{label}: key {key!r} missing ({command} needs "
                        f"{' and '.join(POSITIONAL[command])})")
    if missing:
        return None
    given = {k: v for k, v in merged.items() if k in options}
    deferred = {}  # inputs a job it follows will make: checked where the job runs
    for key in PRODUCIBLE[command] if produced else ():
        value = given.get(key)
        where = Path(os.path.abspath(base / os.path.expanduser(value))) if isinstance(
            value, str) and value.strip() else None
        if where is not None and not where.exists() and any(
                where == p or where.is_relative_to(p) for p in produced):
            deferred[key] = where
    try:  # the CLI's parsing and checks, paths relative to the jobs file; the job's own
        # process checks again where it runs (qa2core.batch.job)
        with tempfile.TemporaryDirectory(prefix="qa2-batch-check-") as stand_in:
            request = requests.from_options(command, {**given, **dict.fromkeys(deferred, stand_in)},
                                            base)
    except Qa2Error as exc:
        for key, line in requests.problems_of(exc):
            origin = " (from [defaults])" if key is not None and key not in raw else ""
            problems.append(f"{label}: key {key!r}{origin}: {line}" if key else f"{label}: {line}")
    if len(problems) > before:
        return None
    args = {k: v for k, v in request.options().items() if k in merged}
    args.update((k, str(v)) for k, v in deferred.items())
    source = Path(args[POSITIONAL[command][0]]) if command in ("package", "stage") else None
    target = Path(args[POSITIONAL[command][-1]])
    written = target if command != "tar" else Path(args.get("out") or target.parent)
    hashed = {k: v for k, v in args.items() if k not in NOT_HASHED}
    spec = hashlib.sha256(json.dumps([command, hashed], sort_keys=True).encode()).hexdigest()[:16]
    job_id = name.strip() if isinstance(name, str) else f"{command}:{raw[POSITIONAL[command][-1]]}"
    return Job(number, job_id, command, args, target, source, mount_point(written), spec,
               named=isinstance(name, str), after=after)


def _key(job: Job) -> str:
    return POSITIONAL[job.command][-1]


def _overlaps(jobs: list[Job], follows: dict[str, set[str]] | None = None) -> list[str]:
    """One writer per PACKPATH (package, stage); any number of readers (verify, tar) of it, but
    a reader and a writer of one PACKPATH only when one follows the other (``after``); no two
    tar jobs writing the same tars; nothing written inside another job's PACKPATH or ORIGPATH,
    nor an ORIGPATH inside a PACKPATH (unless it is what a job it follows produces)."""
    follows = follows or {}

    def ordered(a: Job, b: Job) -> bool:
        return a.id in follows.get(b.id, set()) or b.id in follows.get(a.id, set())

    out = []
    real = {j.number: j.target.resolve() for j in jobs}
    for a in jobs:
        written = a.written.resolve() if a.written is not None else None
        for b in jobs:
            ta, tb = real[a.number], real[b.number]
            if a.number < b.number and ta == tb:
                if a.writes_pack and b.writes_pack:
                    out.append(f"{a.label} and {b.label}: key {_key(a)!r}: both use PACKPATH "
                               f"{a.target}; only one job may write a PACKPATH")
                elif (a.writes_pack or b.writes_pack) and not ordered(a, b):
                    out.append(f"{a.label} and {b.label}: key {_key(a)!r}: both use PACKPATH "
                               f"{a.target}, one writing it: give the reader after = "
                               "[the writer's name], or use two jobs files")
                elif a.command == b.command == "tar" and written == (
                        b.written.resolve() if b.written else None):
                    out.append(f"{a.label} and {b.label}: key 'out': both write the tars of "
                               f"{a.target} into {written}; give one another out")
            if written is not None and a.number != b.number and written != tb and (
                    written.is_relative_to(tb) or written.is_relative_to(paths.state_dir(tb))):
                key = "out" if a.command == "tar" else _key(a)
                out.append(f"{a.label}: key {key!r}: {written} lies inside the PACKPATH of "
                           f"{b.label}")
            if b.source is None or written is None:
                continue
            src = b.source.resolve()
            if written == src or written.is_relative_to(src):
                if not (a.number != b.number and a.id in follows.get(b.id, set())):
                    key = _key(a) if a.command != "tar" else "out"
                    out.append(f"{a.label}: key {key!r}: {written} lies inside the ORIGPATH of "
                               f"{b.label} ({b.source}); sources are never written to")
            elif a.command != "tar" and src.is_relative_to(ta) and \
                    a.id not in follows.get(b.id, set()):
                out.append(f"{a.label}: key {_key(a)!r}: PACKPATH {a.target} holds the ORIGPATH "
                           f"of {b.label} ({b.source})")
        if a.command == "tar" and written is not None and (written == ta or written.is_relative_to(ta)):
            out.append(f"{a.label}: key 'out': {written} lies inside the package it archives")
    return out


def _raw_id(raw: dict[str, Any]) -> str | None:
    name, command = raw.get("name"), raw.get("command")
    if isinstance(name, str):
        return name.strip()
    if command in POSITIONAL and POSITIONAL[command][-1] in raw:
        return f"{command}:{raw[POSITIONAL[command][-1]]}"
    return None


def _order(raw_jobs: list[Any], base: Path, problems: list[str]
           ) -> tuple[dict[int, tuple[str, ...]], dict[str, set[str]], dict[str, Path]]:
    """Each job's ``after`` (checked: known names, no cycle), what each job follows directly
    or not, and what each package or stage job produces (its PACKPATH, STAGED_ROOT)."""
    ids = {n: _raw_id(raw) for n, raw in enumerate(raw_jobs, 1) if isinstance(raw, dict)}
    known = {i for i in ids.values() if i}
    after: dict[int, tuple[str, ...]] = {}
    produced: dict[str, Path] = {}
    for n, raw in enumerate(raw_jobs, 1):
        if not isinstance(raw, dict):
            continue
        label = f"job {n}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
        value = raw.get("after", [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{label}: key 'after': must be a list of job names, not {value!r}")
            continue
        for v in value:
            if v not in known:
                problems.append(f"{label}: key 'after': no job named {v!r}")
            elif v == ids[n]:
                problems.append(f"{label}: key 'after': a job cannot follow itself")
        after[n] = tuple(v for v in value if v in known and v != ids[n])
        command, key = raw.get("command"), None
        if command in ("package", "stage"):
            key = POSITIONAL[command][-1]
        if key and isinstance(raw.get(key), str) and ids[n]:
            produced[ids[n]] = Path(os.path.abspath(base / os.path.expanduser(raw[key])))
    direct = {ids[n]: set(a) for n, a in after.items() if ids[n]}
    follows: dict[str, set[str]] = {}
    for job in direct:
        seen, stack = set(), list(direct[job])
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack += direct.get(d, ())
        follows[job] = seen
    for n, job in ids.items():
        if job and job in follows.get(job, set()):
            problems.append(f"job {n} ({job}): key 'after': a cycle: it follows itself by way of "
                            f"{', '.join(sorted(follows[job] - {job}))}")
    return after, follows, produced


def load(path: Path | str) -> Campaign:
    """Read and check the whole jobs file; :class:`JobsFileError` lists every problem."""
    path = Path(os.path.abspath(path))
    if tomllib is None:
        raise Qa2Error(INSTALL_HINT)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobsFileError(f"{path}: jobs file does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise JobsFileError(f"{path}: not a readable TOML jobs file: {exc}") from None
    problems = [f"unknown table or key {k!r} (the file holds [defaults] and [[job]] tables)"
                for k in data if k not in ("defaults", "job")]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("[defaults] must be a table")
        defaults = {}
    known = {k for opts in OPTIONS.values() for k in opts} - {p for ps in POSITIONAL.values() for p in ps}
    problems += [f"[defaults]: key {k!r}: not an option of any command; valid: {', '.join(sorted(known))}"
                 for k in defaults if k not in known]
    raw_jobs = data.get("job", [])
    if not isinstance(raw_jobs, list) or not raw_jobs:
        problems.append("no jobs: write one [[job]] table per run" if not raw_jobs else
                        "'job' must be an array of tables: write [[job]], not [job]")
        raw_jobs = []
    after, follows, produced = _order(raw_jobs, path.parent, problems)
    jobs = [j for n, raw in enumerate(raw_jobs, 1)
            if (j := _job(n, raw, defaults, path.parent, problems,
                          tuple(produced[f] for f in sorted(follows.get(_raw_id(raw) or "", ()))
                                if f in produced) if isinstance(raw, dict) else (),
                          after.get(n, ()))) is not None]
    seen: dict[str, Job] = {}
    for j in jobs:
        if j.id in seen:
            problems.append(f"{j.label}: same name as {seen[j.id].label}; give each job its own name")
        seen.setdefault(j.id, j)
    problems += _overlaps(jobs, follows)  # among the jobs that are right in themselves
    for j in jobs:
        if j.writes_pack and (path == j.target.resolve() or path.is_relative_to(j.target.resolve())):
            problems.append(f"{j.label}: key {_key(j)!r}: the jobs file lies inside its PACKPATH "
                            f"{j.target}: the ledger and logs beside it would be written into "
                            "the package; keep the jobs file elsewhere")
    if problems:
        lines = tuple(f"{path.name}: {p}" for p in problems)
        raise JobsFileError(f"{path}: {len(lines)} problem(s) in the jobs file", lines=lines)
    return Campaign(path, tuple(jobs))
