"""What goes where in a manual Total Power (single-dish) package (docs/domain.md §2.3, §4), as tables."""

from __future__ import annotations

import re

from qa2core import ItemType
from qa2core.planning.rules import COMMON_SKIPS, NameRule

TABLE = (ItemType.TABLE,)

# The QA2 script generator's TP outputs (docs/domain.md §4.1, almaqa2csg): one calibration script per
# EB named after its MS, the imaging script, and the two amplitude-calibration helpers.
SD_CALIBRATION = "*.scriptForSDCalibration.py"
SD_IMAGING = "scriptForSDimaging.py"
SD_AMPCAL = "*.scriptForSDampcalReduction.py"
SD_EFFICIENCIES = "*.scriptForSDefficiencies.py"
SD_STANDARD = (SD_CALIBRATION, SD_IMAGING, SD_AMPCAL, SD_EFFICIENCIES)
# A calibration script with the wrong case is still TP evidence, but scriptForPI does not run it.
SD_MISSPELLED = ("*.scriptForSDcalibration.py",)
DETECT_PATTERNS = (*SD_STANDARD, *SD_MISSPELLED)

# What scriptForPI (v2.x) globs in script/ and runs once per EB (docs/domain.md §4.1, S4d).
PI_RUNS = "*uid*.ms.scriptForSDCalibration.py"

# Interferometric per-EB calibration scripts: one MOUS is one array, a mix is refused.
IF_CALIBRATION = "*.ms.scriptForCalibration.py"

# Pipeline products and staged trees belong to the pipeline plugin (TP pipeline included).
PIPELINE_MARKERS = ("PPR*.xml", "*pprequest.xml", "*casa_pipescript.py",
                    "*casa_piperestorescript.py", "*pipeline_manifest.xml", "*.hsd_*")
# Starts with its literal (no "(^|/)"), so that searching 200,000 paths stays cheap.
PLACEHOLDER_CHAIN = re.compile(r"(?<![^/])sg_ouss_id/group_ouss(_\d+)?_id/member_ouss(_[^/]+)?_id/")

# What detection looks for, in one pass over the names (qa2core.planning.layouts.find_names).
DETECT_GROUPS: dict[str, tuple[str, ...]] = {
    "pipeline": PIPELINE_MARKERS,  # declined
    "sd": DETECT_PATTERNS,  # OVERRIDE
    "runnable": (PI_RUNS,),  # the EBs that have their calibration script
}

JYPERK = ("jyperk.csv", "*jyperk*.csv")

# QA2 material by its name, in any letter case (docs/layout-rules.md "Manual reductions"); files
# below QA folders (qa2/, QA2/, <EB>.qa2/ …) and calibration plot folders (*.plots/) are placed by
# their folder (qa2core.planning.layouts.FOLDERS), whatever their names.
QA_NAMES = ("*qa2*", "*qa0_report*")  # <EB>.qa2_report.txt, <EB>.qa2_ampVsTime.png, QA2_Report_<SB>.pdf
LISTOBS = ("*.listobs", "*.listobs.txt")
WEATHER = ("*weather*.png",)  # au.plotWeather: weather.png, <EB>.ms.weather.png

# Calibrated TP measurement sets, best first (sdcal + Jy/K scaling), shipped only without noms.
CALIBRATED_MS = ("*.ms.cal.jy", "*.ms.cal")

# kind -> member subdirectory; kinds missing here are handled by the layout functions.
DEST_DIR: dict[str, str] = {
    "sd_calibration_script": "script",
    "sd_imaging_script": "script",
    "sd_ampcal_script": "script",
    "sd_efficiencies_script": "script",
    "if_calibration_script": "script",
    "nonstandard_script": "script",
    "jyperk": "calibration",
    "casa_log": "log",
    "qa_report": "qa",
    "listobs": "qa",
    "weather_plot": "qa",
    "calibration_plot": "calibration",
}

RULES: tuple[NameRule, ...] = (
    NameRule("sd_calibration_script", (SD_CALIBRATION,)),
    NameRule("sd_imaging_script", (SD_IMAGING,)),
    NameRule("sd_ampcal_script", (SD_AMPCAL,)),
    NameRule("sd_efficiencies_script", (SD_EFFICIENCIES,)),
    # Packaged so that validation can name it in the refusal of a mixed tree.
    NameRule("if_calibration_script", (IF_CALIBRATION,)),
    NameRule("jyperk", JYPERK),
    NameRule("fits_image", ("*.fits", "*.fits.gz"), nocase=True),  # X.PBCOR.FITS too
    NameRule("casa_log", ("*.log",)),
    NameRule("qa_report", QA_NAMES, nocase=True),
    NameRule("listobs", LISTOBS),
    NameRule("weather_plot", WEATHER, nocase=True),
    # Tables are recognised by what they are (table.info), not by where they sit.
    NameRule("calibrated_ms", CALIBRATED_MS, TABLE, ("Measurement Set",), unless="noms"),
    NameRule("measurement_set", types=TABLE, table_types=("Measurement Set",), requires="noms",
             skip="measurement set: not delivered (noms); the calibration scripts recreate it"),
    NameRule("measurement_set", types=TABLE, table_types=("Measurement Set",),
             skip="measurement set: intermediate; with --ms only <EB>.ms.cal.jy (or .ms.cal) ships"),
    NameRule("caltable", types=TABLE, table_types=("Calibration",)),
    NameRule("image", types=TABLE, table_types=("Image",)),
    NameRule("asap_scantable", ("*.asap", "*.asap.*"), TABLE,
             skip="ASAP scantable: intermediate product of the calibration script"),
    *COMMON_SKIPS,
    # Last: any other Python file is a non-standard script, packaged with a warning.
    NameRule("nonstandard_script", ("*.py",)),
)

# script/ names validation treats as standard (the core places scriptForPI.py itself).
STANDARD_IN_SCRIPT = (*(f"script/{p}" for p in SD_STANDARD), "script/scriptForPI.py",
                      "script/*.scriptForPI.py")
