"""Run casatools offline.

casatools reads its configuration once, at import time, from the file named by
``CASASITECONFIG``. We point it at a site config that uses the bundled
``casadata`` tree, disables every auto-update (no network) and sends the CASA
log to /dev/null (so no ``casa-*.log`` appears in the working directory).

casatools is imported only inside :func:`tools` so that ``qa2 --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

ENV_VAR = "CASASITECONFIG"
SITE_CONFIG_NAME = "casasiteconfig.py"

# The bundled casadata may be older than casacore's freshness check; the leap-second
# accuracy it warns about is irrelevant for packaging, so that SEVERE line is dropped.
_IGNORED_MESSAGES = ["Leap second table TAI_UTC seems out-of-date"]


def casadata_path() -> Path:
    """Directory of the installed ``casadata`` package (measures, demo files)."""
    import casadata

    return Path(casadata.datapath)


def site_config_text(measurespath: str) -> str:
    """Text of a CASA site config that keeps casatools offline and log-file free."""
    return (
        "# CASA site config written by qa2core.testing.casa: offline, no log file.\n"
        f"measurespath = {str(measurespath)!r}\n"
        "measures_auto_update = False\n"
        "data_auto_update = False\n"
        'logfile = "/dev/null"\n'
    )


def write_site_config(path: Path) -> Path:
    """Write the site config for the installed casadata to ``path``."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(site_config_text(str(casadata_path())))
    return path


def _resolve_site_config() -> Path:
    """Return the site config to use, exporting it in ``CASASITECONFIG`` when needed."""
    hint = (
        "run the `make` bootstrap (it writes .venv/casasiteconfig.py) or set CASASITECONFIG "
        "to an absolute path written by `python -m qa2core.testing.casa write-config PATH`."
    )
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured)
        # casaconfig silently falls back to ~/.casa/data with auto-updates otherwise.
        if not (path.is_absolute() and path.is_file()):
            raise RuntimeError(
                f"CASASITECONFIG={configured} is not an existing absolute file: {hint}")
        return path
    path = Path(sys.prefix) / SITE_CONFIG_NAME
    if not path.is_file():
        raise RuntimeError(f"No CASA site config found (CASASITECONFIG unset, no {path}): {hint}")
    os.environ[ENV_VAR] = str(path)
    return path


def _import_casatools() -> ModuleType:
    # casaconfig parses sys.argv with abbreviations enabled, so a qa2 option such as
    # `--config x` would be taken as its --configfile; also skip ~/.casa/config.py.
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "qa2", "--noconfig"]
    try:
        import casatools
    except ModuleNotFoundError as exc:
        if exc.name != "casatools":
            raise
        raise ModuleNotFoundError(
            "casatools is missing: pip install 'qa2core[testing]' (or run `make`)", name=exc.name
        ) from exc
    finally:
        sys.argv = saved_argv
    return casatools


def _quiet_logger(casatools: ModuleType) -> None:
    """Route casatools messages through its /dev/null sink and show only WARN and up."""
    logger = getattr(casatools, "logger", None)
    if logger is None:
        return
    logger.setglobal(True)
    logger.filter("WARN")
    logger.filterMsg(_IGNORED_MESSAGES)


def tools() -> ModuleType:
    """Return the ``casatools`` module, configured offline (imports it on first use)."""
    if "casatools" in sys.modules:
        return sys.modules["casatools"]
    _resolve_site_config()
    casatools = _import_casatools()
    _quiet_logger(casatools)
    return casatools


def main(argv: list[str]) -> int:
    """``python -m qa2core.testing.casa write-config PATH`` (used by the Makefile bootstrap)."""
    if len(argv) != 2 or argv[0] != "write-config":
        print("usage: python -m qa2core.testing.casa write-config PATH", file=sys.stderr)
        return 2
    print(write_site_config(Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
