"""Run ALMA's real scriptForPI on a package the way a PI does, with CASA and the pipeline stubbed.

A PI untars the delivery, puts the ASDMs in ``raw/`` and runs ``casa --pipeline -c
<scriptForPI>`` in ``script/``. Neither CASA's tasks nor the ALMA pipeline can run here, so
:func:`run_scriptforpi` starts the same Python (``sys.executable``) in ``<member>/script`` through a
small bootstrap that puts in the script's globals, as CASA does, the names it calls:

* ``casalog`` (``post``, ``origin``, any other method): recorded, nothing printed;
* ``execfile(path, globals)``: recorded, then the file really runs with those globals, as in CASA;
* pipeline tasks ``h_init``, ``h_save``, ``hifa_restoredata``, ``hsd_restoredata``,
  ``hif_mstransform``, ``hifa_flagtargets``, ``hif_uvcontfit``, ``hif_uvcontsub``: recorded.
  ``h*_restoredata`` also records what the real task would read (``<name>/found``: the files in
  ``products_dir``, default ``../products``, and whether each ASDM is in ``rawdata_dir``, default
  ``../rawdata``) and leaves an empty ``<EB>.ms`` in the working directory, where the real one
  writes the restored MS, so the script's own checks after the restore go on;
* CASA tools and tasks ``msmd`` (no science spw: ``spwsforintent`` gives ``[]``) and
  ``mstransform`` (leaves an empty ``outputvis``): recorded;
* ``recipes.almahelpers.fixsyscaltimes``, which the era's restore scripts import: recorded.

Everything else is the script's own and runs for real: its globs, the manifest reading, ``tar``,
``cp`` and ``ln`` through ``os.system`` (recorded as ``os.system``, then run), the ``raw/`` and
disk-space checks and the ``calibrated/`` layout. ``calls`` lists every recorded call in order as
``(name, kwargs)``; positional arguments are under ``"args"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DONE = "Done. Please find results in directory"
FAILURES = ("ERROR", "could not find the file", "Traceback")

_BOOTSTRAP = r'''
import builtins, json, os, sys, types

script, fd, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
records = os.fdopen(fd, "w", buffering=1)


def record(name, args=(), kwargs=None):
    entry = dict(kwargs or {})
    if args:
        entry["args"] = list(args)
    records.write(json.dumps([name, entry], default=repr) + "\n")


def stub(name, effect=None):
    def call(*args, **kwargs):
        record(name, args, kwargs)
        return effect(*args, **kwargs) if effect else None
    call.__name__ = name.rsplit(".", 1)[-1]
    return call


class Stubs:
    def __init__(self, prefix, **effects):
        self.prefix, self.effects = prefix, effects

    def __getattr__(self, name):
        return stub(self.prefix + "." + name, self.effects.get(name))


def restore(name):
    def effect(vis=None, session=None, products_dir=None, rawdata_dir=None, **_):
        products, rawdata = products_dir or "../products", rawdata_dir or "../rawdata"
        vislist = [vis] if isinstance(vis, str) else list(vis or [])
        names = [os.path.basename(v) for v in vislist]
        record(name + "/found", kwargs={
            "cwd": os.getcwd(),
            "products": sorted(os.listdir(products)) if os.path.isdir(products) else None,
            "rawdata": {n: os.path.isdir(os.path.join(rawdata, n)) for n in names}})
        for n in names:
            os.makedirs(n + ".ms", exist_ok=True)
    return effect


def execfile(filename, globals=None, locals=None):
    record("execfile", (filename,))
    with open(filename) as source:
        code = compile(source.read(), filename, "exec")
    exec(code, script_globals if globals is None else globals, locals)


real_system = os.system
os.system = stub("os.system", real_system)
tasks = {n: stub(n) for n in ("h_init", "h_save", "hif_mstransform", "hifa_flagtargets",
                              "hif_uvcontfit", "hif_uvcontsub")}
tasks.update({n: stub(n, restore(n)) for n in ("hifa_restoredata", "hsd_restoredata")})
recipes, helpers = types.ModuleType("recipes"), types.ModuleType("recipes.almahelpers")
helpers.fixsyscaltimes = stub("fixsyscaltimes")
recipes.almahelpers = helpers
sys.modules.update({"recipes": recipes, "recipes.almahelpers": helpers})

script_globals = {"__name__": "__main__", "__file__": script, "__builtins__": builtins,
                  "casalog": Stubs("casalog"), "execfile": execfile,
                  "msmd": Stubs("msmd", spwsforintent=lambda *a, **k: [], nchan=lambda *a, **k: 0),
                  "mstransform": stub("mstransform",
                                      lambda vis=None, outputvis=None, **_: outputvis and
                                      os.makedirs(outputvis, exist_ok=True)),
                  **tasks, **options}
with open(script) as source:
    code = compile(source.read(), script, "exec")
exec(code, script_globals)
'''


@dataclass(frozen=True)
class ScriptForPIRun:
    """One run of a scriptForPI: its exit status, output and the recorded CASA/pipeline calls."""

    returncode: int
    stdout: str
    stderr: str
    calls: tuple[tuple[str, dict[str, Any]], ...]

    def called(self, name: str) -> list[dict[str, Any]]:
        """The kwargs of every recorded call of ``name`` (e.g. ``"hifa_restoredata"``), in order."""
        return [kwargs for call, kwargs in self.calls if call == name]

    @property
    def logged_errors(self) -> list[str]:
        """Messages the script posted to casalog that say ERROR (CASA shows them to the PI)."""
        return [str(a) for kw in self.called("casalog.post") for a in kw.get("args", [])[:1]
                if "ERROR" in str(a)]

    @property
    def finished(self) -> bool:
        """The script printed its final "Done" line, exited 0 and reported no error."""
        text = self.stdout + self.stderr
        return (self.returncode == 0 and DONE in self.stdout and not self.logged_errors
                and not any(bad in text for bad in FAILURES))


def run_scriptforpi(member_dir: Path, script: Path, *, timeout: float = 120,
                    options: dict[str, Any] | None = None) -> ScriptForPIRun:
    """Run ``script`` in ``member_dir/script`` as ``casa --pipeline -c <script>`` does, CASA and the
    pipeline stubbed (module docstring). ``options``: globals set before the script starts, as a PI
    sets them (``{"DOSPLIT": True}``, ``{"SPACESAVING": -1}``). A run longer than ``timeout``
    seconds is killed and raises :class:`subprocess.TimeoutExpired`."""
    import json
    import subprocess
    import sys
    import threading

    read_fd, write_fd = os.pipe()
    lines: list[str] = []

    def collect() -> None:
        with os.fdopen(read_fd) as records:
            lines.extend(records)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    argv = [sys.executable, "-c", _BOOTSTRAP, str(Path(script).resolve()), str(write_fd),
            json.dumps(options or {})]
    try:
        proc = subprocess.Popen(argv, cwd=Path(member_dir) / "script", stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, pass_fds=(write_fd,))
    finally:
        os.close(write_fd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        reader.join(timeout=10)  # a shell command the script started may still hold the pipe
    calls = tuple((name, kwargs) for name, kwargs in map(json.loads, lines))
    return ScriptForPIRun(proc.returncode, stdout, stderr, calls)
