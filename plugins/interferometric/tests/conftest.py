from __future__ import annotations

import pytest

pytest_plugins = ["qa2core.testing"]


@pytest.fixture
def if_pm(qa2_pm):
    """A manager with only this plugin: the tests do not depend on what else is installed."""
    from qa2_interferometric import plugin

    qa2_pm.register(plugin, name="interferometric")
    return qa2_pm
