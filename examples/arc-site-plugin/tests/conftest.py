from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["qa2core.testing"]

SITE_NOTE = "ARC: EU ARC node (example)\nreducer: jdoe@example.org\n"


@pytest.fixture
def arc_pm(qa2_pm):
    """A manager without installed plugins, holding the plugin from source and the plugin it
    wraps: the tests do not depend on what else is installed, and need no pip install."""
    from qa2_arc_example import plugin
    from qa2_interferometric import plugin as interferometric

    qa2_pm.register(interferometric, name="interferometric")
    qa2_pm.register(plugin, name="arcsite")
    return qa2_pm


@pytest.fixture(scope="session")
def arc_reduction(tmp_path_factory):
    """A real manual reduction (real MS, caltables, CASA images, FITS; built with casatools)
    holding the site marker; built once per session, tests must not modify it."""
    if importlib.util.find_spec("casatools") is None:  # importing it here would skip its config
        pytest.skip("the real sample needs casatools (pip install 'qa2core[testing]')")
    from qa2core.testing.sampledata import build_manual_reduction

    sample = build_manual_reduction(tmp_path_factory.mktemp("arc") / "reduction")
    (sample.root / "ARC_SITE.txt").write_text(SITE_NOTE)
    return sample
