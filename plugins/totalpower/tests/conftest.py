"""Fixtures: a real manual Total Power reduction (real MSs, caltables, CASA image, FITS, ASDMs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# The real TP reduction is a sample-data builder (qa2core.testing.sampledata, manual Total
# Power section), shared with qa2 selftest and the CASA-session API tests.
from qa2core.testing.sampledata import Sample, build_tp_reduction

pytest_plugins = ["qa2core.testing"]


@pytest.fixture
def tp_pm(qa2_pm):
    """A manager with only this plugin: the tests do not depend on what else is installed."""
    from qa2_totalpower import plugin

    qa2_pm.register(plugin, name="totalpower")
    return qa2_pm


@pytest.fixture(scope="session")
def tp_sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    import importlib.util

    if importlib.util.find_spec("casatools") is None:  # importing it here would skip its config
        pytest.skip("the real TP sample needs casatools (make bootstrap)")
    return build_tp_reduction(tmp_path_factory.mktemp("tp") / "reduction")


@pytest.fixture
def tp_copy(tp_sample: Sample, tmp_path: Path) -> Sample:
    """A private copy of the real sample, for tests that add files to it."""
    root = tmp_path / "src" / "reduction"
    shutil.copytree(tp_sample.root, root, symlinks=True)
    return Sample(root, tp_sample.readme_header, tp_sample.piscript, tp_sample.ebs,
                    tp_sample.project)
