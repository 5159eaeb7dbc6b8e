"""A per-EB SD calibration script whose EB has no ASDM or MS in the reduction (qa2core.data.facts)."""

from __future__ import annotations

from qa2_totalpower import plugin

from qa2core import Level
from qa2core.engine import load_delivery

EB, EB2 = "uid___A002_Xa5df2c_X5e3", "uid___A002_Xa5df2c_X6f1"


def test_a_sd_script_whose_eb_has_no_data_is_warned(make_tree):
    root = make_tree({f"{EB}.ms.scriptForSDCalibration.py": "#",
                      f"{EB2}.ms.scriptForSDCalibration.py": "#", "scriptForSDimaging.py": "#",
                      f"{EB}.asdm.sdm/ASDM.xml": "<ASDM/>"})
    delivery = load_delivery(root, "cycle3-nopipe")
    claim = plugin.qa2_detect(delivery=delivery)
    found = [f for f in plugin.qa2_collect(delivery=delivery, context=claim.context).findings
             if f.rule == "script.eb_data"]
    assert [(f.level, f.path) for f in found] == [(Level.WARN, f"{EB2}.ms.scriptForSDCalibration.py")]
