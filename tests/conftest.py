"""Core tests: a throwaway plugin registered directly, no entry points needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qa2core import GENERIC, Action, Claim, Collected, Finding, Level, Placement, Purpose, hookimpl
from qa2core.planning.compression import compression_for
from qa2core.testing import fits_header

pytest_plugins = ["qa2core.testing"]


def _hypothesis_outside_the_repo() -> None:
    """Hypothesis keeps examples and patches in ./.hypothesis: a clean clone stays clean."""
    import tempfile

    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="qa2-hypothesis-"))


_hypothesis_outside_the_repo()


class ToyPlugin:
    """Claims any tree with a ``toy.marker``; scripts to script/, FITS to product/, logs to log/."""

    @hookimpl
    def qa2_detect(self, delivery):
        if "toy.marker" in delivery.names():
            return Claim(GENERIC, "toy marker present", ("toy.marker",))
        if delivery.options.purpose is Purpose.VERIFY and "run.py" in delivery.names():
            return Claim(GENERIC, "a toy package (script/run.py)", ("run.py",))  # its own output
        return None

    @hookimpl
    def qa2_collect(self, delivery):
        out = []
        for item in delivery.items:
            if item.name == "toy.marker":
                out.append(Collected(item, "marker", skip="marker file"))
            elif item.name.endswith((".py", ".fits", ".log", ".tgz")) or item.is_dir:
                out.append(Collected(item, "file"))
        return out

    @hookimpl
    def qa2_layout(self, delivery, collected):
        out = []
        for c in collected:
            squeeze = compression_for(c.item, set())
            if squeeze:
                out.append(Placement(f"product/{squeeze[1]}", squeeze[0], (c.item.relpath,), "toy"))
            elif c.item.is_dir:
                out.append(Placement(f"calibrated/{c.item.name}", Action.COPY, (c.item.relpath,), "toy"))
            else:
                sub = {"py": "script", "log": "log"}.get(c.item.name.rsplit(".", 1)[-1], "product")
                out.append(Placement(f"{sub}/{c.item.name}", Action.COPY, (c.item.relpath,), "toy"))
        return out

    @hookimpl
    def qa2_validate(self, view):
        if view.glob("script/forbidden.py"):
            return [Finding(Level.ERROR, "toy.forbidden", "script/forbidden.py", "forbidden script")]
        return []


TOY_FILES = {
    "toy.marker": "",
    "scripts/run.py": "print('reduce')\n",
    "img/target.image.pbcor.fits": fits_header("BUNIT   = 'Jy/beam '"),
    "img/target.pb.fits": fits_header() + bytes(range(256)) * 64,
    "logs/casa-20160101-000000.log": "log line\n",
    "notes.txt": "not classified\n",
}


@pytest.fixture
def toy_pm(qa2_pm):
    qa2_pm.register(ToyPlugin(), name="toy")
    return qa2_pm


@pytest.fixture
def toy_tree(tmp_path: Path, request: pytest.FixtureRequest):
    """The toy reduction; at teardown it must be byte for byte as it was, unless the test is
    marked ``mutates_source`` (it edits the source on purpose)."""
    from qa2core.testing import tree_state, write_tree

    root = write_tree(tmp_path / "reduction", TOY_FILES)
    before = tree_state(root)
    yield root
    if request.node.get_closest_marker("mutates_source") is None:
        assert tree_state(root) == before, "the source changed"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mutates_source: the test edits the source on purpose")


@pytest.fixture
def header(tmp_path: Path) -> Path:
    path = tmp_path / "README.header.txt"
    path.write_bytes(b"Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
                     b"Project code: 2015.1.00123.S\nComments from Reducer: none\n#####\n")
    return path


@pytest.fixture
def piscript(tmp_path: Path) -> Path:
    path = tmp_path / "qa2master" / "scriptForPI.py"
    path.parent.mkdir()
    path.write_text("# $Id: scriptForPI.py,v 1.23 2017/10/17 dpetry Exp $\nprint('PI')\n")
    return path


# ------------------------------------------------------------ make mutate: cheapest test first
# mutmut runs each mutant's covering tests with -x, in an order of its own. Running the cheapest
# first (set-up included: a fixture that builds sample data costs every forked mutant again)
# kills most mutants in a fraction of a second. The costs are measured in mutmut's stats run
# (MUTANT_UNDER_TEST=stats) and read back in every mutant's run; nothing changes outside mutmut.
_MUTMUT_PHASES = {"", "stats", "fail", "list_all_tests", "mutant_generation"}
_COSTS = Path("qa2-test-costs.json")  # in ./mutants, where mutmut runs the tests
_cost: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        _cost[report.nodeid] = _cost.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats" and _cost:
        known = json.loads(_COSTS.read_text()) if _COSTS.exists() else {}
        _COSTS.write_text(json.dumps({**known, **_cost}))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("MUTANT_UNDER_TEST", "") in _MUTMUT_PHASES or not _COSTS.exists():
        return
    cost = json.loads(_COSTS.read_text())
    items.sort(key=lambda item: cost.get(item.nodeid, float("inf")))
