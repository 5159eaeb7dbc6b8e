"""casatools at run time: optional, offline, serialised, and never pointed at a source table.

* :func:`tools` imports casatools on first use only (``qa2 --help`` never pays for it), with
  every auto-update off and its log sink on ``/dev/null`` whatever the site or user config
  says, so no network and no ``casa-*.log`` in the working directory (docs/casa-and-io.md
  §2.1). Missing casatools, or casatools that fails to start offline, gives ``None`` and a
  reason: callers then read ``table.info`` and FITS headers only.
* casatools is not thread-safe: every use holds :data:`LOCK`, through :func:`session`, which
  also routes CASA's log to a file in the session's scratch directory and hands back its
  SEVERE lines, for qa2 to relay as warnings. The previous log file (a CASA session's own
  ``casalog``) is restored after each session.
* casacore writes ``table.lock`` into a table whenever it opens it, even read-only, so a source
  table is never opened: :func:`mirror` rebuilds it in scratch space, hard links file by file
  (a read-only open through a link never writes the shared inode; the lock file is made in the
  mirror), copies where the file system refuses links (docs/casa-and-io.md §2.4, §3.6, §5).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from qa2core.writing import fileops

LOCK = threading.RLock()  # every casatools call holds it
_RELAYED: list[str] = []  # SEVERE lines met while reading or exporting, until drained
_LOAD = threading.Lock()
_loaded: list[tuple[ModuleType | None, str]] = []
# casadata may be older than casacore's leap-second freshness check: irrelevant for packaging.
IGNORED = ("Leap second table TAI_UTC seems out-of-date",)
SPARSE_OVER = 8 << 20  # metadata mirrors: bigger files that cannot be linked become holes


def tools() -> ModuleType | None:
    """The casatools module, ready and offline, or ``None`` (see :func:`reason`)."""
    with _LOAD:
        if not _loaded:
            _loaded.append(_load())
    return _loaded[0][0]


def reason() -> str:
    """Why :func:`tools` gives ``None`` ("" when casatools is usable)."""
    tools()
    return _loaded[0][1]


def version() -> str:
    ct = tools()
    try:
        return str(ct.version_string()) if ct is not None else ""
    except Exception:  # an old casatools without version_string
        return "?"


def _offline(config: ModuleType) -> None:
    config.measures_auto_update = False
    config.data_auto_update = False
    config.logfile = os.devnull
    if not (config.measurespath and os.path.isdir(config.measurespath)):
        try:  # the casadata wheel: measures without a download
            import casadata

            config.measurespath = casadata.datapath
            config.datapath = [casadata.datapath]
        except ImportError:
            pass  # tables still open without measures


def _load() -> tuple[ModuleType | None, str]:
    if "casatools" in sys.modules:  # a CASA session, or the tests: use it as it is
        module = sys.modules["casatools"]
        return (module, "") if module is not None else (None, "casatools is not installed")
    if importlib.util.find_spec("casatools") is None:
        return None, "casatools is not installed"
    saved, noise = sys.argv, io.StringIO()
    # casaconfig parses sys.argv with abbreviations on: a qa2 option must not reach it.
    sys.argv = [saved[0] if saved else "qa2"]
    try:
        with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
            from casaconfig import config

            _offline(config)
            import casatools
    except Exception as exc:  # configuration, data or library errors: degrade, say why
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"casatools failed to start offline ({type(exc).__name__}: {first})"
    finally:
        sys.argv = saved
    logger = getattr(casatools, "logger", None)
    if logger is not None:
        logger.filterMsg(list(IGNORED))
    return casatools, ""


@dataclass
class Session:
    """One locked use of casatools: ``dir`` is its scratch directory (removed afterwards);
    ``severe`` holds CASA's SEVERE log lines once the ``with`` block is left."""

    dir: Path
    severe: list[str] = field(default_factory=list)


@contextlib.contextmanager
def session(scratch: Path | str | None = None) -> Iterator[Session]:
    """Hold the casatools lock with CASA's log in a scratch file (below ``scratch``, or a new
    temporary directory); the directory goes when the block ends."""
    ct = tools()
    with LOCK:
        if scratch is not None:
            os.makedirs(scratch, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="qa2-casa-", dir=scratch))
        logger = getattr(ct, "logger", None)
        previous = logger.logfile() if logger is not None else None
        log = work / "casa.log"
        if logger is not None:
            logger.setlogfile(str(log))
        run = Session(work)
        try:
            yield run
        finally:
            if logger is not None:
                logger.setlogfile(previous or os.devnull)
            run.severe[:0] = _severe(log)
            shutil.rmtree(work, ignore_errors=True)


def relay(path: str, lines: list[str]) -> None:
    """Keep CASA's SEVERE ``lines`` met on ``path`` for the run's warnings (:func:`drain`)."""
    with _LOAD:
        _RELAYED.extend(f"{path}: {line} [casa.severe]" for line in lines if line)


def drain() -> list[str]:
    """The relayed SEVERE lines since the last call (the engine adds them to a run's warnings)."""
    with _LOAD:
        out = list(_RELAYED)
        _RELAYED.clear()
    return out


def _severe(log: Path) -> list[str]:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 4 and parts[1] == "SEVERE" and not any(i in line for i in IGNORED):
            out.append(f"CASA: {parts[3].strip()} ({parts[2].strip()})")
    return out


def mirror(src: str, dst: str, root: str, *, data: bool = True) -> None:
    """Rebuild the table ``src`` at the new path ``dst``: directories made, files hard-linked,
    copied where linking is refused (another file system: EXDEV, EPERM …); ``table.lock`` is
    never mirrored. ``data=False`` is for metadata reads (keywords, shapes, subtables): a file
    over :data:`SPARSE_OVER` that cannot be linked becomes a hole of its size instead of a
    copy, so ``qa2 inspect`` of a 100 GB image on another disk reads nothing of its pixels.
    Links leaving ``root`` (ORIGPATH) and special files are refused as the scan refuses them.
    """
    os.mkdir(dst)
    for e in fileops.walk_tree(src, root):
        target = os.path.join(dst, e.rel)
        if e.is_dir:
            os.mkdir(target)
            continue
        path = os.path.realpath(os.path.join(src, e.rel))  # link() never follows a symlink
        try:
            os.link(path, target)
        except OSError as exc:
            if exc.errno not in fileops.LINK_FALLBACK_ERRNOS:
                raise
            if data or e.size <= SPARSE_OVER:
                fileops.copy_file(path, target)
            else:
                with open(target, "xb") as fh:
                    fh.truncate(e.size)
