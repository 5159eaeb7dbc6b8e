"""pytest fixtures for qa2 and its plugins: ``pytest_plugins = ["qa2core.testing"]``.

* ``qa2_pm`` - a fresh plugin manager with no installed plugins (register yours directly); a
  hook that writes below ORIGPATH fails its call (``guard``);
* ``make_tree`` - write ``{relpath: content}`` below a directory;
* ``tree_state`` - a byte-for-byte fingerprint of a tree, to prove a source is unchanged;
* ``run_qa2`` - the ``qa2`` command in-process; returns a :class:`Qa2Result` with
  ``exit_code``, ``stdout`` and ``stderr``;
* :func:`check_plugin` - the plugin check (:mod:`~qa2core.testing.plugincheck`): package a
  sample, verify it, fail on each trap of wrapping and composing; ``plugin_manager(plugins)``;
* ``manual_sample`` - a real manual reduction (real MS, caltables, CASA images, FITS), built
  once per session with casatools; tests must not modify it.

Submodules: :mod:`~qa2core.testing.sampledata` (real sample data),
:mod:`~qa2core.testing.casa` (casatools run offline; ``python -m qa2core.testing.casa
write-config PATH``) and :mod:`~qa2core.testing.selftest` (what ``qa2 selftest`` builds).
They need the ``qa2core[testing]`` extra (pytest, casatools, casadata); the packager never
imports them, except ``qa2 selftest`` inside the command.

PYTEST_DONT_REWRITE: a conftest may import ``qa2core.testing.sampledata`` (and so this package)
before its ``pytest_plugins`` line; this module has no asserts to rewrite, so pytest need not
warn that it was imported first.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import pytest
except ModuleNotFoundError as exc:  # a runtime-only install: say which extra is missing
    if exc.name != "pytest":
        raise
    raise ModuleNotFoundError(
        "qa2core.testing needs the testing extra: pip install 'qa2core[testing]'", name=exc.name
    ) from exc

from qa2core import hookimpl
from qa2core.hooks.manager import Qa2Plugins, get_plugin_manager
from qa2core.testing.plugincheck import Checked, check_plugin, plugin_manager

__all__ = ["Checked", "Qa2Result", "check_plugin", "files_below", "fits_header", "plugin_manager",
           "tree_state", "write_tree"]


def write_tree(root: Path, files: dict[str, str | bytes | None]) -> Path:
    """Create files (``None`` content: a directory) below ``root``."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


# The source of a ``sitecustomize.py`` for tests of jobs in other processes (batch workers,
# SLURM jobs: put its directory on PYTHONPATH): while the file named by QA2_TEST_SLOW_FLAG
# exists, each file copy waits, so a job can be caught in the middle of writing its package.
SLOW_COPY_HOOK = """\
import os
flag = os.environ.get("QA2_TEST_SLOW_FLAG")
if flag:
    import time
    from qa2core.writing import fileops
    _copy = fileops.copy_file
    def copy_file(src, dst, tick=None):
        while os.path.exists(flag):
            time.sleep(0.05)
        return _copy(src, dst, tick)
    fileops.copy_file = copy_file
"""


class SerialExecutor:
    """A batch executor in a few lines (``qa2 batch --executor serial``): the jobs one after
    another in this process, each still in its own job process. For tests, and the shape of a
    site executor (docs/batch.md)."""

    name = "serial"

    def run(self, tasks, on_event):
        from qa2core.batch.worker import run_task

        for task in tasks:
            yield task, run_task(task, on_event)


class SerialExecutorPlugin:
    """Register it (``pm.register(SerialExecutorPlugin(), name=...)``) to offer ``serial``."""

    @hookimpl
    def qa2_batch_executor(self, name, settings):
        return SerialExecutor() if name == "serial" else None


def fits_header(*cards: str) -> bytes:
    """A real FITS primary header with no data (NAXIS = 0) and ``cards`` (80-byte cards), END,
    padded to 2880 bytes: the smallest file every FITS reader accepts."""
    text = "".join(c.ljust(80) for c in ("SIMPLE  =                    T", "BITPIX  =                  -32",
                                         "NAXIS   =                    0", *cards, "END"))
    return text.encode().ljust(2880, b" ")


def tree_state(root: Path) -> dict[str, tuple]:
    """relpath -> (type, mode, size, mtime_ns, sha256) for everything below ``root``."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("f", st.st_mode, st.st_size, st.st_mtime_ns, digest)
            elif stat.S_ISLNK(st.st_mode):
                state[rel] = ("l", os.readlink(path))
            else:
                state[rel] = ("d", st.st_mode)
    return state


def files_below(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@dataclass
class Qa2Result:
    """What ``run_qa2`` returns: the exit code and both streams, as text."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def qa2_pm() -> Qa2Plugins:
    return get_plugin_manager(entrypoints=False, guard=True)


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    def make(files: dict[str, str | bytes | None], name: str = "reduction") -> Path:
        return write_tree(tmp_path / name, files)

    return make


@pytest.fixture
def run_qa2() -> Callable[..., Qa2Result]:
    from typer.testing import CliRunner

    from qa2core.cli import app

    def run(*args: str | Path) -> Qa2Result:
        result = CliRunner().invoke(app, [str(a) for a in args])
        return Qa2Result(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(scope="session")
def manual_sample(tmp_path_factory: pytest.TempPathFactory):
    import importlib.util

    if importlib.util.find_spec("casatools") is None:  # importing it here would skip the config
        pytest.skip("the real sample needs casatools (make bootstrap)")
    from qa2core.testing.sampledata import build_manual_reduction

    return build_manual_reduction(tmp_path_factory.mktemp("manual") / "reduction")
