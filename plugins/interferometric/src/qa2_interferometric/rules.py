"""What goes where in a manual interferometric package (docs/domain.md §2.3, §2.5), as tables."""

from __future__ import annotations

from qa2core import ItemType
from qa2core.planning.rules import COMMON_SKIPS, NameRule

TABLE = (ItemType.TABLE,)

CALIBRATION_SCRIPT = "*.ms.scriptForCalibration.py"
SD_SCRIPTS = ("*.scriptForSDCalibration.py", "scriptForSDimaging.py", "*.scriptForSDcalibration.py")
PIPELINE_MARKERS = ("PPR_*.xml", "*pprequest.xml", "*casa_pipescript.py",
                    "*casa_piperestorescript.py", "*pipeline_manifest.xml")
IMAGING_EVIDENCE = ("scriptForImaging.py", "*.pbcor.fits")

# What detection looks for, in one pass over the names (qa2core.planning.layouts.find_names).
DETECT_GROUPS: dict[str, tuple[str, ...]] = {
    "pipeline": PIPELINE_MARKERS,  # the pipeline plugin's input: declined
    "calibration": (CALIBRATION_SCRIPT,),  # SPECIFIC
    "imaging": IMAGING_EVIDENCE,  # GENERIC
}

# QA2 material by its name, in any letter case (docs/layout-rules.md "Manual reductions"); files
# below QA folders (qa2/, QA2/, <EB>.qa2/ …) and calibration plot folders (*.plots/) are placed by
# their folder (qa2core.planning.layouts.FOLDERS), whatever their names.
QA_NAMES = ("*qa2*", "*qa0_report*")  # <EB>.qa2_report.txt, <EB>.qa2_ampVsTime.png, QA2_Report_<SB>.pdf
LISTOBS = ("*.listobs", "*.listobs.txt")
WEATHER = ("*weather*.png",)  # au.plotWeather: weather.png, <EB>.ms.weather.png
FLUX_VALUES = ("allFluxes.txt",)  # written and read by scriptForFluxCalibration.py

# kind -> member subdirectory; kinds missing here are handled by the layout functions.
DEST_DIR: dict[str, str] = {
    "calibration_script": "script",
    "flux_script": "script",
    "imagingprep_script": "script",
    "pol_script": "script",
    "imaging_script": "script",
    "ephemeris": "calibration",
    "fits_image": "product",
    "casa_log": "log",
    "qa_report": "qa",
    "listobs": "qa",
    "weather_plot": "qa",
    "calibration_plot": "calibration",
    "flux_values": "calibration",
}

RULES: tuple[NameRule, ...] = (
    NameRule("calibration_script", (CALIBRATION_SCRIPT,)),
    NameRule("flux_script", ("scriptForFluxCalibration.py",)),
    NameRule("imagingprep_script", ("scriptForImagingPrep.py",), requires="accepts_imagingprep"),
    NameRule("imagingprep_script", ("scriptForImagingPrep.py",),
             skip="scriptForImagingPrep.py is not recognised by this style (cycle3 and later)"),
    NameRule("pol_script", ("scriptForPolCalibration.py",)),
    NameRule("imaging_script", ("scriptForImaging.py",)),
    NameRule("ephemeris", ("*.eph",)),
    NameRule("fluxscale", ("*.fluxscale",)),
    NameRule("fits_image", ("*.fits", "*.fits.gz"), nocase=True),  # X.PBCOR.FITS too
    NameRule("casa_log", ("*.log",)),
    NameRule("qa_report", QA_NAMES, nocase=True),
    NameRule("listobs", LISTOBS),
    NameRule("weather_plot", WEATHER, nocase=True),
    NameRule("flux_values", FLUX_VALUES),
    # Tables are recognised by what they are (table.info), not by where they sit.
    NameRule("calibrated_ms", ("*.ms.split.cal", "calibrated*.ms"), TABLE, ("Measurement Set",),
             unless="noms"),
    NameRule("measurement_set", types=TABLE, table_types=("Measurement Set",),
             skip="measurement set: not delivered (noms)"),
    NameRule("caltable", types=TABLE, table_types=("Calibration",)),
    NameRule("image", types=TABLE, table_types=("Image",)),
    *COMMON_SKIPS,
)

# Per-EB scripts whose EBs scriptForPI needs (docs/domain.md §8.2).
SCRIPT_GLOBS = {
    "flux": "script/scriptForFluxCalibration.py",
    "imagingprep": "script/scriptForImagingPrep.py",
    "imaging": "script/scriptForImaging.py",
}
