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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa2core import ous, paths
from qa2core.batch import INSTALL_HINT
from qa2core.errors import Qa2Error, UsageError
from qa2core.styles import resolve_style

if sys.version_info >= (3, 11):
    import tomllib
else:  # the batch extra brings tomli on 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

PACKAGE_MODES = ("fake", "ticket", "copy", "hard")
STAGE_MODES = ("copy", "hard", "fake")

# kind of each key: how it is checked. "source"/"target" are the positional directories.
OPTIONS: dict[str, dict[str, str]] = {
    "package": {"origpath": "source", "packpath": "target", "readme": "file", "piscript": "piscript",
                "style": "style", "mode": "mode", "append": "append", "noms": "bool",
                "plugin": "str", "jobs": "int", "ous_uids": "uids"},
    "stage": {"pipeline_root": "source", "staged_root": "target", "mode": "stage_mode",
              "piscript": "piscript", "pipe_readme": "file", "plugin": "str"},
    "verify": {"packpath": "package", "fast": "bool", "complete": "bool", "for_ingestion": "bool",
               "style": "style", "jobs": "int"},
    "tar": {"packpath": "package", "ous_uids": "uids", "out": "dir", "max_size": "number"},
}
POSITIONAL = {"package": ("origpath", "packpath"), "stage": ("pipeline_root", "staged_root"),
              "verify": ("packpath",), "tar": ("packpath",)}
PATH_KINDS = ("source", "target", "file", "piscript", "package", "dir")
NOT_HASHED = ("jobs",)  # threads change how fast, not what is written


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

    @property
    def label(self) -> str:
        return f"job {self.number} ({self.id})"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.id) if self.named else self.command

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


def mount_point(path: Path) -> str:
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return str(p)


def _check_value(kind: str, value: Any, where: Path, bad: Callable[[str], None]) -> Any:
    """The value, checked and normalised (paths absolute), or None after ``bad(reason)``."""
    want = {"bool": bool, "int": int, "number": (int, float)}.get(kind, str)
    if not isinstance(value, want) or (kind in ("int", "number") and isinstance(value, bool)):
        return bad(f"must be {'a ' + want.__name__ if isinstance(want, type) else 'a number'}, "
                   f"not {type(value).__name__} {value!r}")
    if (kind == "int" and value < 1) or (kind == "number" and value <= 0):
        return bad(f"must be positive, not {value}")
    if kind not in PATH_KINDS:
        return _check_word(kind, value, bad)
    if not value.strip():
        return bad("is empty")
    path = Path(os.path.abspath(where / os.path.expanduser(value)))
    if kind in ("source", "dir", "package") and not path.is_dir():
        return bad(f"{path}: {'does not exist' if not path.exists() else 'is not a directory'}")
    if kind == "file" and not path.is_file():
        return bad(f"{path}: file does not exist")
    if kind == "piscript" and path.is_dir():
        path = path / "scriptForPI.py"  # as the engine reads it; the fingerprint covers the file
    if kind == "piscript" and not path.is_file():
        return bad(f"{path}: does not exist (give scriptForPI.py or the directory holding it)")
    if kind == "target":
        if not path.parent.is_dir():
            return bad(f"{path.parent}: parent directory does not exist")
        if path.exists() and not path.is_dir():
            return bad(f"{path}: exists and is not a directory")
    return str(path)


def _check_word(kind: str, value: str, bad: Callable[[str], None]) -> Any:
    valid = {"mode": PACKAGE_MODES, "stage_mode": STAGE_MODES, "append": ous.APPEND_MODES}.get(kind)
    if valid and value not in valid:
        return bad(f"{value!r} is not one of {', '.join(valid)}")
    try:
        if kind == "style":
            resolve_style(value)
        elif kind == "uids":
            ous.parse_uids(value)
    except UsageError as exc:
        return bad(str(exc))
    return value


def _job(number: int, raw: Any, defaults: dict[str, Any], base: Path,
         problems: list[str]) -> Job | None:
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
    merged.update((k, v) for k, v in raw.items() if k not in ("command", "name"))
    args: dict[str, Any] = {}
    before = len(problems)
    for key, value in merged.items():
        origin = " (from [defaults])" if key not in raw else ""
        if key not in options:
            problems.append(f"{label}: key {key!r}: unknown for {command}; valid: name, command, "
                            f"{', '.join(options)}")
            continue
        checked = _check_value(options[key], value, base, lambda why, k=key, o=origin: problems.append(
            f"{label}: key {k!r}{o}: {why}"))
        if checked is not None:
            args[key] = checked
    for key in POSITIONAL[command]:
        if key not in merged:
            problems.append(f"{label}: key {key!r} missing ({command} needs "
                            f"{' and '.join(POSITIONAL[command])})")
    if len(problems) > before:
        return None
    source = Path(args[POSITIONAL[command][0]]) if command in ("package", "stage") else None
    target = Path(args[POSITIONAL[command][-1]])
    written = target if command != "tar" else Path(args.get("out") or target.parent)
    hashed = {k: v for k, v in args.items() if k not in NOT_HASHED}
    spec = hashlib.sha256(json.dumps([command, hashed], sort_keys=True).encode()).hexdigest()[:16]
    job_id = name.strip() if isinstance(name, str) else f"{command}:{raw[POSITIONAL[command][-1]]}"
    return Job(number, job_id, command, args, target, source, mount_point(written), spec,
               named=isinstance(name, str))


def _key(job: Job) -> str:
    return POSITIONAL[job.command][-1]


def _overlaps(jobs: list[Job]) -> list[str]:
    """No two jobs on one PACKPATH (unless both only read it); no PACKPATH inside another job's
    PACKPATH or ORIGPATH, nor an ORIGPATH inside a PACKPATH."""
    out = []
    real = {j.number: j.target.resolve() for j in jobs}
    for a in jobs:
        for b in jobs:
            ta, tb = real[a.number], real[b.number]
            if a.number < b.number and (a.writes or b.writes) and ta == tb:
                out.append(f"{a.label} and {b.label}: key {_key(a)!r}: both use PACKPATH {a.target}; "
                           "only one job may write a PACKPATH")
            elif a.number != b.number and a.writes and ta != tb and (
                    ta.is_relative_to(tb) or ta.is_relative_to(paths.state_dir(tb))):
                out.append(f"{a.label}: key {_key(a)!r}: {a.target} lies inside the PACKPATH of "
                           f"{b.label}")
            if b.source is None or not a.writes:
                continue
            src = b.source.resolve()
            written = ta if a.command != "tar" else Path(a.args.get("out") or ta.parent).resolve()
            if written == src or written.is_relative_to(src):
                key = _key(a) if a.command != "tar" else "out"
                out.append(f"{a.label}: key {key!r}: {written} lies inside the ORIGPATH of "
                           f"{b.label} ({b.source}); sources are never written to")
            elif a.command != "tar" and src.is_relative_to(ta):
                out.append(f"{a.label}: key {_key(a)!r}: PACKPATH {a.target} holds the ORIGPATH "
                           f"of {b.label} ({b.source})")
    return out


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
    jobs = [j for n, raw in enumerate(raw_jobs, 1)
            if (j := _job(n, raw, defaults, path.parent, problems)) is not None]
    seen: dict[str, Job] = {}
    for j in jobs:
        if j.id in seen:
            problems.append(f"{j.label}: same name as {seen[j.id].label}; give each job its own name")
        seen.setdefault(j.id, j)
    problems += _overlaps(jobs)  # among the jobs that are right in themselves
    if problems:
        lines = tuple(f"{path.name}: {p}" for p in problems)
        raise JobsFileError(f"{path}: {len(lines)} problem(s) in the jobs file", lines=lines)
    return Campaign(path, tuple(jobs))
