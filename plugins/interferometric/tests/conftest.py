from __future__ import annotations

import pytest

pytest_plugins = ["qa2core.testing"]


@pytest.fixture
def if_pm(qa2_pm):
    """A manager with only this plugin: the tests do not depend on what else is installed."""
    from qa2_interferometric import plugin

    qa2_pm.register(plugin, name="interferometric")
    return qa2_pm


@pytest.fixture(scope="session")
def manual_layouts(tmp_path_factory):
    """One real manual reduction in the JAO and the NRAO layout (sampledata.build_manual_layouts),
    built once per session; tests must not modify it."""
    import importlib.util

    if importlib.util.find_spec("casatools") is None:  # importing it here would skip its config
        pytest.skip("the real sample needs casatools (make bootstrap)")
    from qa2core.testing.sampledata import build_manual_layouts

    return build_manual_layouts(tmp_path_factory.mktemp("layouts"))
