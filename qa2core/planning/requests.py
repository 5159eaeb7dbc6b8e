"""One request model for the CLI, the CASA-style API and ``qa2 batch``.

Each command's options are parsed and checked here, and only here: the types, the defaults,
the choices, the paths, and every usage error's wording. ``qa2 package``/``stage`` and
``QA_Packager``/``QA_Pipeline_Stager`` reach :meth:`PackageRequest.from_options` through
:func:`qa2core.engine.package`; ``qa2 verify``/``tar`` call :class:`VerifyRequest` and
:class:`TarRequest`; ``qa2 batch`` checks each job of a jobs file with the same classes before
anything starts, and again in the job's own process on the worker, where the paths are what
count (a PACKPATH whose parent is missing there is refused with the CLI's message, never made).

The keyword names of ``from_options`` are the CLI's option names with ``-`` written ``_``;
the jobs file's keys are those names (:data:`COMMANDS`). Every option is checked; the first
problem is raised (what the command line prints, with its exit status) and carries every
problem found as ``problems``, ``(option, line)`` pairs, which a jobs file's check lists.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qa2core.errors import Qa2Error, UsageError
from qa2core.hooks.model import Mode, Purpose
from qa2core.planning import ous, paths
from qa2core.planning.styles import Style, resolve_style

PACKAGE_MODES = tuple(Mode)  # fake (the default), ticket, copy, hard
STAGE_MODES = (Mode.COPY, Mode.HARD, Mode.FAKE)  # copy is the default
DEFAULT_MAX_SIZE_GIB = 100.0  # qa2 tar's volume limit (qa2core.writing.archive.DEFAULT_MAX_BYTES)
T = TypeVar("T")


# ---------------------------------------------------------------------------- single checks


def choice(value: str | Mode | None, valid: tuple[Mode, ...] | tuple[str, ...], what: str):
    """``value`` as one of ``valid`` (empty or None: the first, the default)."""
    value = value or valid[0]
    for v in valid:
        if str(v) == str(value):
            return v
    raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


def resolve_piscript(piscript: Path | str | None) -> Path | None:
    """A file, or a directory holding ``scriptForPI.py`` (original page: both forms)."""
    if piscript is None or str(piscript) == "":
        return None
    piscript = Path(piscript)
    if piscript.is_dir():
        candidate = piscript / "scriptForPI.py"
        if not candidate.is_file():
            raise UsageError(f"{piscript}: --piscript directory holds no scriptForPI.py")
        return candidate.resolve()
    if not piscript.is_file():
        raise UsageError(f"{piscript}: --piscript does not exist")
    return piscript.resolve()


def check_source(origpath: Path, name: str = "ORIGPATH") -> Path:
    if not origpath.exists():
        raise UsageError(f"{origpath}: {name} does not exist")
    if not origpath.is_dir():
        raise UsageError(f"{origpath}: {name} must be a reduction directory, not a file")
    return origpath.resolve()


def check_target(packpath: Path, orig: Path | None, origpath: Path) -> Path:
    """PACKPATH against ORIGPATH (``orig``, resolved; None when it is refused itself) and the
    disk as it is here: its parent must exist. Nothing is created, here or anywhere."""
    pack = packpath.resolve()
    if orig is not None and (pack == orig or pack.is_relative_to(orig)):
        raise Qa2Error(f"{packpath}: PACKPATH must not be inside ORIGPATH {origpath} "
                       "(the source is never written to)")
    if orig is not None and (orig.is_relative_to(pack) or orig.is_relative_to(paths.state_dir(pack))):
        raise Qa2Error(f"{packpath}: PACKPATH must not contain ORIGPATH {origpath} "
                       "(append none would delete the source)")
    if pack.exists() and not pack.is_dir():
        raise Qa2Error(f"{packpath}: PACKPATH exists and is not a directory")
    if not pack.parent.is_dir():
        raise UsageError(f"{pack.parent}: parent directory of PACKPATH does not exist")
    zip_path = paths.ticket_zip(pack)
    if zip_path.exists() and not zip_path.is_file():
        raise Qa2Error(f"{zip_path}: ticket zip path exists and is not a file")
    return pack


def check_paths(origpath: Path, packpath: Path) -> tuple[Path, Path]:
    """ORIGPATH and PACKPATH, resolved and checked (the first problem raised)."""
    orig = check_source(origpath)
    return orig, check_target(packpath, orig, origpath)


def check_package(packpath: Path) -> Path:
    """The package a verify or tar reads (``qa2 verify``'s own first checks, in its words)."""
    if not packpath.exists():
        raise UsageError(f"{packpath}: PACKPATH does not exist")
    if not packpath.is_dir():
        raise Qa2Error(f"{packpath}: not a directory, so not a qa2 package")
    return packpath


NAMED_BY_RUN = ("auto", "placeholders")  # --ous-uids words of qa2 package and qa2 stage


def parse_ous_uids(value: str | None, *, auto: bool) -> ous.OusUids | None:
    """``--ous-uids``: SOUS,GOUS,MOUS, or (where the command takes names from its input)
    ``auto``, which parses to None here: the claiming plugin names them during the run, or
    ``placeholders``: the placeholder names, also for styles that would derive real ones."""
    if value is None or not value.strip() or (auto and value.strip() in NAMED_BY_RUN):
        return None
    return ous.parse_uids(value)


# ---------------------------------------------------------------------------- collecting problems


_TYPES: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "number": (int, float),
                                       "str": (str,), "path": (str, os.PathLike)}
_NAMES = {"bool": "a bool", "int": "an int", "number": "a number", "str": "a str",
          "path": "a path"}


class _Checks:
    """Runs each check, keeps every problem with its option; :meth:`done` raises them."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, Qa2Error]] = []

    def __call__(self, key: str, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return check(*args, **kwargs)
        except Qa2Error as exc:
            self.problems.append((key, exc))
            return None

    def typed(self, key: str, value: Any, kind: str, *, positive: bool = False) -> bool:
        """Whether ``value`` (not None) is of ``kind``; a problem noted if not."""
        flag = "--" + key.replace("_", "-")
        ok = isinstance(value, _TYPES[kind]) and not (kind in ("int", "number")
                                                      and isinstance(value, bool))
        if not ok:
            self.problems.append((key, UsageError(f"{flag}: must be {_NAMES[kind]}, not "
                                                  f"{type(value).__name__} {value!r}")))
        elif positive and not value > 0:
            self.problems.append((key, UsageError(f"{flag} {value:g}: must be positive")))
            ok = False
        return ok

    def path(self, key: str, value: Any, base: Path | None, *, required: bool) -> Path | None:
        """A path option: None when not given (or '' for an optional one); relative to
        ``base`` when given (the jobs file's directory), '~' expanded there."""
        if value is None or (not required and str(value) == ""):
            return None
        if not self.typed(key, value, "path"):
            return None
        if isinstance(value, str) and not value.strip():
            self.problems.append((key, UsageError(f"{key.upper()}: is empty")))
            return None
        if base is None:
            return Path(value)
        return Path(os.path.abspath(base / os.path.expanduser(value)))

    def done(self) -> None:
        """Raise the first problem, as the command line shows it (one error, its exit status);
        its ``problems`` hold every ``(option, line)`` found, for a jobs file's check."""
        if not self.problems:
            return
        first = self.problems[0][1]
        first.problems = tuple((key, line) for key, exc in self.problems for line in exc.lines)
        raise first


def problems_of(exc: Qa2Error) -> tuple[tuple[str | None, str], ...]:
    """``(option, line)`` for every problem a ``from_options`` found (its error's lines, with
    no option, for any other error)."""
    got = getattr(exc, "problems", None)
    return got if got is not None else tuple((None, line) for line in exc.lines)


# ---------------------------------------------------------------------------- the requests


@dataclass(frozen=True)
class PackageRequest:
    """A checked ``qa2 package`` (``purpose`` package) or ``qa2 stage`` (``purpose`` stage)."""

    root: Path  # ORIGPATH (PIPELINE_ROOT), resolved
    pack: Path  # PACKPATH (STAGED_ROOT), resolved
    origpath: str  # as the user wrote it, for messages
    packpath: str
    mode: Mode
    append: str
    style: Style
    readme: Path | None
    piscript: Path | None  # the file, resolved
    uids: ous.OusUids | None  # None: placeholders, or ``auto``
    purpose: Purpose
    auto_uids: bool = False  # --ous-uids auto: the names come from the input (qa2_ous_uids)
    ous_uids: str | None = None  # as given

    @property
    def placeholder_uids(self) -> bool:
        """--ous-uids placeholders: placeholder names even where the style would derive UIDs."""
        return (self.ous_uids or "").strip() == "placeholders"
    noms: bool | None = None
    plugin: str | None = None
    jobs: int | None = None
    force: bool = False  # --append member of EBs a member already holds (engine.package)

    @classmethod
    def from_options(cls, origpath: Path | str, packpath: Path | str, *,
                     readme: Path | str | None = None, piscript: Path | str | None = None,
                     style: str = "", mode: str | Mode | None = None, append: str | None = "none",
                     noms: bool | None = None, plugin: str | None = None, jobs: int | None = None,
                     ous_uids: str | None = None, force: bool = False,
                     purpose: Purpose | str = Purpose.PACKAGE,
                     base: Path | None = None) -> PackageRequest:
        """The options of ``qa2 package`` (``qa2 stage``: :meth:`StageRequest.from_options`),
        checked in the command line's order; relative paths from ``base`` when given."""
        purpose = Purpose(purpose)
        stage = purpose is Purpose.STAGE
        readme_flag = "--pipe-readme" if stage else "--readme"
        c = _Checks()
        origin = c.path("pipeline_root" if stage else "origpath", origpath, base, required=True)
        target = c.path("staged_root" if stage else "packpath", packpath, base, required=True)
        readme_key, readme_file = ("pipe_readme" if stage else "readme"), None
        readme_path = c.path(readme_key, readme, base, required=False)
        pi_path = c.path("piscript", piscript, base, required=False)
        modes = STAGE_MODES if stage else PACKAGE_MODES
        checked_mode = c("mode", choice, mode, modes, "mode") if mode is None or c.typed(
            "mode", mode, "str") else None
        checked_append = c("append", choice, append or "none", ous.APPEND_MODES,
                           "append mode") if append is None or c.typed("append", append, "str") \
            else None
        resolved_style = None
        noms_ok = noms is None or c.typed("noms", noms, "bool")
        if c.typed("style", style, "str"):
            resolved_style = c("style", resolve_style, style, noms if noms_ok else None)
        if readme_path is not None:
            if readme_path.is_file():
                readme_file = readme_path
            else:
                c.problems.append((readme_key, UsageError(
                    f"{readme_path}: {readme_flag} {'file' if stage else 'header file'} does "
                    "not exist")))
        pi = c("piscript", resolve_piscript, pi_path)
        uids = None
        if ous_uids is not None and c.typed("ous_uids", ous_uids, "str"):
            uids = c("ous_uids", parse_ous_uids, ous_uids, auto=True)
        if plugin is not None:
            c.typed("plugin", plugin, "str")
        if jobs is not None:
            c.typed("jobs", jobs, "int", positive=True)
        c.typed("force", force, "bool")
        orig = pack = None
        if origin is not None:
            orig = c("pipeline_root" if stage else "origpath", check_source, origin)
        if target is not None:
            pack = c("staged_root" if stage else "packpath", check_target, target, orig,
                     origin if origin is not None else Path(str(origpath)))
        c.done()
        assert orig is not None and pack is not None and resolved_style is not None
        return cls(orig, pack, str(origin), str(target), checked_mode, checked_append,
                   resolved_style, readme_file, pi, uids, purpose,
                   auto_uids=(ous_uids or "").strip() == "auto", ous_uids=ous_uids, noms=noms,
                   plugin=plugin, jobs=jobs, force=force)

    def options(self) -> dict[str, Any]:
        """The options as the jobs file names them, normalised (paths absolute as written,
        the PI script file), JSON-friendly; a job's process parses them again."""
        stage = self.purpose is Purpose.STAGE
        out = {"pipeline_root" if stage else "origpath": self.origpath,
               "staged_root" if stage else "packpath": self.packpath,
               "pipe_readme" if stage else "readme": str(self.readme) if self.readme else None,
               "piscript": str(self.piscript) if self.piscript else None,
               "mode": str(self.mode), "plugin": self.plugin}
        if not stage:
            out.update(style=self.style.name, append=self.append, noms=self.noms,
                       jobs=self.jobs, ous_uids=self.ous_uids, force=self.force)
        return out


class StageRequest(PackageRequest):
    """A checked ``qa2 stage``: the package request with purpose stage."""

    @classmethod
    def from_options(cls, pipeline_root: Path | str, staged_root: Path | str, *,  # type: ignore[override]
                     mode: str | Mode | None = None, piscript: Path | str | None = None,
                     pipe_readme: Path | str | None = None, plugin: str | None = None,
                     base: Path | None = None) -> PackageRequest:
        return PackageRequest.from_options(pipeline_root, staged_root, readme=pipe_readme,
                                           piscript=piscript, mode=mode, plugin=plugin,
                                           purpose=Purpose.STAGE, base=base)


VERIFY_LEVELS = ("fast", "complete", "full")


@dataclass(frozen=True)
class VerifyRequest:
    """A checked ``qa2 verify``."""

    packpath: Path
    level: str  # fast, complete or full (--fast wins over --complete)
    for_ingestion: bool = False
    style: str = ""
    jobs: int = 4

    @classmethod
    def from_options(cls, packpath: Path | str, *, fast: bool = False, complete: bool = False,
                     for_ingestion: bool = False, style: str = "", jobs: int = 4,
                     base: Path | None = None) -> VerifyRequest:
        c = _Checks()
        pack = c.path("packpath", packpath, base, required=True)
        for key, value in (("fast", fast), ("complete", complete),
                           ("for_ingestion", for_ingestion)):
            c.typed(key, value, "bool")
        if c.typed("style", style, "str"):
            c("style", resolve_style, style)
        c.typed("jobs", jobs, "int", positive=True)
        if pack is not None:
            c("packpath", check_package, pack)
        c.done()
        assert pack is not None
        level = "fast" if fast else "complete" if complete else "full"
        return cls(pack, level, for_ingestion, style, jobs)

    def options(self) -> dict[str, Any]:
        return {"packpath": str(self.packpath), "fast": self.level == "fast",
                "complete": self.level == "complete", "for_ingestion": self.for_ingestion,
                "style": self.style, "jobs": self.jobs}


@dataclass(frozen=True)
class TarRequest:
    """A checked ``qa2 tar``. Its output directory must exist where it runs: never created."""

    packpath: Path
    ous_uids: str | None = None  # as given, checked (SOUS,GOUS,MOUS)
    out: Path | None = None  # None: beside PACKPATH
    max_size: float = DEFAULT_MAX_SIZE_GIB  # GiB

    @property
    def max_bytes(self) -> int:
        return int(self.max_size * 2**30)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.packpath.parent

    @classmethod
    def from_options(cls, packpath: Path | str, *, ous_uids: str | None = None,
                     out: Path | str | None = None, max_size: float = DEFAULT_MAX_SIZE_GIB,
                     base: Path | None = None) -> TarRequest:
        c = _Checks()
        pack = c.path("packpath", packpath, base, required=True)
        if ous_uids is not None and c.typed("ous_uids", ous_uids, "str"):
            c("ous_uids", parse_ous_uids, ous_uids, auto=False)
        out_dir = c.path("out", out, base, required=False)
        c.typed("max_size", max_size, "number", positive=True)
        if pack is not None:
            c("packpath", check_package, pack)
        if out_dir is not None and not out_dir.is_dir():
            why = "is not a directory" if out_dir.exists() else "directory does not exist"
            c.problems.append(("out", UsageError(f"{out_dir}: --out {why}")))
        c.done()
        assert pack is not None
        return cls(pack, ous_uids, out_dir, float(max_size))

    def options(self) -> dict[str, Any]:
        return {"packpath": str(self.packpath), "ous_uids": self.ous_uids,
                "out": str(self.out) if self.out else None, "max_size": self.max_size}


# ---------------------------------------------------------------------------- by command

COMMANDS: dict[str, type] = {"package": PackageRequest, "stage": StageRequest,
                             "verify": VerifyRequest, "tar": TarRequest}
_INTERNAL = ("base", "purpose")


def positional(command: str) -> tuple[str, ...]:
    """The positional arguments of ``command``, by the names ``--help`` shows (lower case)."""
    params = inspect.signature(COMMANDS[command].from_options).parameters.values()
    return tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)


def option_names(command: str) -> tuple[str, ...]:
    """Positional arguments, then options (long names, ``-`` written ``_``)."""
    params = inspect.signature(COMMANDS[command].from_options).parameters.values()
    return (*positional(command), *(p.name for p in params
                                    if p.kind is p.KEYWORD_ONLY and p.name not in _INTERNAL))


def from_options(command: str, options: dict[str, Any], base: Path | None = None):
    """The checked request of ``command`` from options named as :func:`option_names` says."""
    return COMMANDS[command].from_options(**options, base=base)
