"""Rules that read the data (qa2core.data.facts): every calibration script's EB has its ASDM or
measurement set, and product CASA images qa2 cannot export without casatools are warned about."""

from __future__ import annotations

import importlib.util

import pytest
from qa2_interferometric import plugin

from qa2core import Level
from qa2core.data import casaenv, facts
from qa2core.engine import load_delivery

EB, EB2 = "uid___A002_Xb8e115_X1e3b", "uid___A002_Xb8e115_X2a41"
HAVE_CASA = importlib.util.find_spec("casatools") is not None


def _findings(root, rule):
    delivery = load_delivery(root, "cycle3-nopipe")
    claim = plugin.qa2_detect(delivery=delivery)
    return [f for f in plugin.qa2_collect(delivery=delivery, context=claim.context).findings
            if f.rule == rule]


def test_a_script_whose_eb_has_no_data_is_warned(make_tree):
    root = make_tree({f"c1/{EB}.ms.scriptForCalibration.py": "#",
                      f"c2/{EB2}.ms.scriptForCalibration.py": "#",
                      f"c1/{EB}.asdm.sdm/ASDM.xml": "<ASDM/>"})
    (finding,) = _findings(root, "script.eb_data")
    assert (finding.level, finding.path) == (Level.WARN, f"c2/{EB2}.ms.scriptForCalibration.py")
    assert f"neither {EB2}.asdm.sdm nor a measurement set" in finding.message


def test_scripts_alone_are_not_judged(make_tree):
    root = make_tree({f"{EB}.ms.scriptForCalibration.py": "#", "scriptForImaging.py": "#"})
    assert _findings(root, "script.eb_data") == []


@pytest.mark.skipif(not HAVE_CASA, reason="needs casatools for a real MS (make test installs it)")
def test_a_measurement_set_named_otherwise_is_matched_by_its_data(make_tree):
    """calibrated.ms carries EB2 in its ASDM_EXECBLOCK: read through a mirror, it matches."""
    from qa2core.testing import casa, sampledata, tree_state

    root = make_tree({f"{EB}.ms.scriptForCalibration.py": "#",
                      f"{EB2}.ms.scriptForCalibration.py": "#",
                      f"{EB}.asdm.sdm/ASDM.xml": "<ASDM/>"})
    ms = sampledata.make_ms(root / "calibrated.ms")
    tb = casa.tools().table()
    tb.open(str(ms / "OBSERVATION"), nomodify=False)
    try:
        tb.putcell("SCHEDULE", 0, ["SchedulingBlock uid://A002/Xb8e115/X1", "ExecBlock uid://A002/Xb8e115/X2a41"])
    finally:
        tb.close()
    before = tree_state(root)
    assert _findings(root, "script.eb_data") == []
    assert tree_state(root) == before


def test_without_casatools_a_casa_only_product_names_exportfits(make_tree, monkeypatch):
    monkeypatch.setattr(casaenv, "tools", lambda: None)
    monkeypatch.setattr(casaenv, "reason", lambda: "casatools is not installed")
    facts._CACHE.clear()
    table = {"table.dat": b"\xbe\xbe\xbe\xbe", "table.info": "Type = Image\nSubType = \n"}
    root = make_tree({f"{EB}.ms.scriptForCalibration.py": "#", "scriptForImaging.py": "#",
                      **{f"img/t.image.pbcor/{k}": v for k, v in table.items()},
                      **{f"img/t.mask/{k}": v for k, v in table.items()}})
    (finding,) = _findings(root, "product.export")
    assert (finding.level, finding.path) == (Level.WARN, "img/t.image.pbcor")
    assert "exportfits(imagename='t.image.pbcor', fitsimage='t.image.pbcor.fits'" in finding.message
