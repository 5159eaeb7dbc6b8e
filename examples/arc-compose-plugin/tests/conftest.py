from __future__ import annotations

import pytest

pytest_plugins = ["qa2core.testing"]  # fixtures: qa2_pm, make_tree, run_qa2, manual_sample

CAL = "uid___A002_X1_X2.ms.scriptForCalibration.py"


@pytest.fixture
def reduction(make_tree):
    """A small marked reduction, names and a few bytes only (no casatools needed)."""
    return make_tree({CAL: "# calibration\n", "ARC_SITE.txt": "ARC: EU node\n",
                      "arc_qa.json": '{"checked_by": "jdoe"}\n'})


@pytest.fixture
def piscript(tmp_path):
    from qa2core.testing.sampledata import pi_script_text

    path = tmp_path / "mirror" / "scriptForPI.py"
    path.parent.mkdir()
    path.write_text(pi_script_text())
    return path
