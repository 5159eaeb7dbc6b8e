"""What goes where for pipeline runs and staged pipeline trees (docs/domain.md §2.3, §2.4, §5), as tables.

One name table serves every pipeline era of docs/domain.md §5.2: ``.tar.gz`` (until 2016-06) and
``.tgz`` (from 2016-07) archives, bare names and the ``<oussid>.`` / ``<oussid>.<recipe>.``
prefixes (2017-07 on), ``PPR_*.xml`` and ``<oussid>.pprequest.xml`` (2017-06 on).
"""

from __future__ import annotations

import re

from qa2core import MEMBER_DIRS, ItemType
from qa2core.planning.rules import COMMON_SKIPS, NameRule
from qa2core.writing import manifest

TABLE = (ItemType.TABLE,)

# ---------------------------------------------------------------------------- input shapes

# A pipeline run: <proj>_<date>/SOUS_<uid>/GOUS_<uid>/MOUS_<uid>[/SBS_<uid>]/{working,products,rawdata}.
RUN_AREAS = ("working", "products", "rawdata")
OUS_DIRS = ("SOUS_uid___*", "GOUS_uid___*", "MOUS_uid___*", "SBS_uid___*")
MOUS_DIR = "MOUS_uid___*"
SB_DIR = "SBS_uid___*"  # SB-level runs (the "SB pipeline", packager support since 2015-11)
WEBLOG_DIR = "pipeline-*"  # working/pipeline-YYYYMMDDTHHMMSS/html/...: the weblog, unpacked

# A staged tree: [<root>/sg_ouss_id/group_ouss_id/]member_ouss_id/{README,calibration,...}.
STAGED_DIRS = MEMBER_DIRS
CHECKSUM_MANIFEST = manifest.NAME  # qa2 stage's manifest-sha256.txt beside the OUS chain
ANALYSIS_DIR = "calibrated"  # made by scriptForPI; the analyst images in it (Case 2)
RAW_DIR = "raw"  # ASDMs the analyst put beside the staged tree for scriptForPI

# Names in script/ that make a tree a pipeline package (other plugins decline on them too).
SCRIPT_MARKERS = ("PPR_*.xml", "*pprequest.xml", "*casa_pipescript.py", "*casa_piperestorescript.py")

# Calibrator images (bandpass, phase, amplitude, check source) ship without a primary beam in
# real deliveries (2016.1.01435.S: only ..._ph.spw19.mfs.I.pbcor.fits).
CALIBRATOR_IMAGE = re.compile(r"_(bp|ph|amp|flux|pol|chk|check)\.spw")

# ---------------------------------------------------------------------------- names

RULES: tuple[NameRule, ...] = (
    # script/
    NameRule("ppr", ("PPR_*.xml", "*PPR*.xml", "*pprequest.xml")),
    NameRule("pipescript", ("casa_pipescript.py", "*.casa_pipescript.py")),
    NameRule("restorescript", ("casa_piperestorescript.py", "*.casa_piperestorescript.py")),
    NameRule("manifest", ("*pipeline_manifest.xml",)),
    NameRule("imaging_script", ("scriptForImaging.py",)),
    # never delivered
    NameRule("aquareport", ("*aquareport.xml",),
             skip="pipeline AQUA report: written for the QA tool, not delivered (docs/domain.md §2.3)"),
    NameRule("readme", ("README", "README_*", "README.*"),
             skip="pipeline README: pass it with --pipe-readme (qa2 stage) or --readme (qa2 package)"),
    # calibration/
    NameRule("auxcaltables", ("*.auxcaltables.tgz", "*.auxcaltables.tar.gz")),
    NameRule("caltables", ("*.caltables.tgz", "*.caltables.tar.gz")),
    NameRule("flagversions", ("*.flagversions.tgz", "*.flagversions.tar.gz")),
    NameRule("auxcalapply", ("*.auxcalapply.txt",)),
    NameRule("calapply", ("*.calapply.txt",)),
    NameRule("auxproducts", ("*auxproducts.tgz", "*auxproducts.tar.gz")),
    NameRule("flux", ("flux.csv", "*.flux.csv")),
    NameRule("antennapos", ("antennapos.csv", "*.antennapos.csv")),
    NameRule("cont", ("cont.dat", "*.cont.dat")),
    NameRule("flagtemplate", ("*_flag*template.txt", "*.flag*template.txt")),
    NameRule("jyperk", ("jyperk.csv", "*jyperk*.csv")),
    NameRule("ephemeris", ("*.eph",)),
    # qa/, log/, product/
    NameRule("weblog", ("*weblog.tgz", "*weblog.tar.gz")),
    NameRule("casa_commands", ("casa_commands.log", "*.casa_commands.log")),
    NameRule("casa_log", ("casa-*.log", "casapy-*.log")),
    NameRule("fits_image", ("*.fits", "*.fits.gz"), nocase=True),  # X.PBCOR.FITS too
    # CASA tables, recognised by what they are (table.info), not by name
    NameRule("measurement_set", types=TABLE, table_types=("Measurement Set",),
             skip="measurement set: not delivered (scriptForPI recreates it from the raw data)"),
    NameRule("caltable", types=TABLE, table_types=("Calibration",),
             skip="pipeline caltable: it ships inside the session caltables tarball"),
    NameRule("image", types=TABLE, table_types=("Image",)),
    *COMMON_SKIPS,
)

# kind -> member subdirectory (kinds missing here are placed by the layout functions).
DEST_DIR: dict[str, str] = {
    "ppr": "script", "pipescript": "script", "restorescript": "script", "manifest": "script",
    "imaging_script": "script",
    "caltables": "calibration", "auxcaltables": "calibration", "flagversions": "calibration",
    "calapply": "calibration", "auxcalapply": "calibration", "auxproducts": "calibration",
    "flux": "calibration", "antennapos": "calibration", "cont": "calibration",
    "flagtemplate": "calibration", "jyperk": "calibration", "ephemeris": "calibration",
    "weblog": "qa",
    "casa_commands": "log", "casa_log": "log",
    "fits_image": "product",
}

# Names the prefix strip (style switch strip_oussid_prefix) reduces to: <oussid>.casa_pipescript.py
# and <oussid>.<recipe>.casa_pipescript.py -> casa_pipescript.py (scriptForPI <= v1.15 needs it).
CANONICAL: dict[str, str] = {
    "pipescript": "casa_pipescript.py",
    "restorescript": "casa_piperestorescript.py",
    "ppr": "pprequest.xml",  # PPR_<uid>.xml has no prefix and keeps its name
}

# ---------------------------------------------------------------------------- run areas

# What a run's working/ contributes; the rest of working/ is the pipeline's scratch space.
WORKING_TAKES = ("ppr", "pipescript", "restorescript", "casa_commands", "casa_log", "flux",
                 "antennapos", "cont", "flagtemplate", "jyperk")
# What the analysis area (calibrated/ of a staged tree) contributes: the manual imaging results.
ANALYSIS_TAKES = ("fits_image", "imaging_script", "image")

AREA_SKIPS: dict[str, str] = {
    "rawdata": "raw data (ASDM): delivered in its own tarball, not in the package",
    "raw": "raw data (ASDM): delivered in its own tarball, not in the package",
    "working": "pipeline working file: the deliverables are the exports in products/",
    "working_image": "CASA image in working/: the pipeline exported it as FITS to products/",
    "weblog_dir": "weblog directory: the weblog tarball exported to products/ is what ships",
    "calibrated": "scriptForPI/imaging work area (calibrated/): only FITS images, PB/mask images "
                  "and scriptForImaging.py are delivered from it",
    "member_readme": "the staged README: the member README is written from --readme "
                     "(pass this file as --readme to keep its text)",
    "staged_manifest": "checksum manifest of the staged tree: the package gets its own",
}

# One file per role in the package; when a run holds several (working/ copies, prefixed and
# bare names), the first (area, pattern) with a match wins and the others are skipped as
# duplicates. flux.csv/antennapos.csv come bare from working/ and cont.dat prefixed from
# products/, as in the delivered Cycle-4 tree (docs/domain.md §2.4, §5.3 INFERENCE).
ROLE_PREFERENCE: dict[str, tuple[tuple[str, str], ...]] = {
    "ppr": (("products", "PPR_*.xml"), ("working", "PPR_*.xml"), ("products", "*pprequest.xml"),
            ("working", "*pprequest.xml")),
    "pipescript": (("products", "*.casa_pipescript.py"), ("working", "casa_pipescript.py")),
    "restorescript": (("products", "*.casa_piperestorescript.py"),
                      ("working", "casa_piperestorescript.py")),
    "casa_commands": (("products", "*.casa_commands.log"), ("working", "casa_commands.log")),
    "flux": (("working", "flux.csv"), ("products", "*flux.csv")),
    "antennapos": (("working", "antennapos.csv"), ("products", "*antennapos.csv")),
    "cont": (("products", "*cont.dat"), ("working", "cont.dat")),
    "jyperk": (("products", "*jyperk*.csv"), ("working", "*jyperk*.csv")),
}

# What <M>.auxproducts.tgz carries (2017-05 on; docs/domain.md §5.2): when a run has one, it is
# the pipeline's export of these and it wins; the loose copies in working/ (and products/) stay
# out, because scriptForPI >= 1.23 untars the tgz inside calibration/ (§8.3 rule 13).
AUX_ROLES = ("flux", "antennapos", "cont", "jyperk")

# When two areas give the same destination name, the lower rank wins.
AREA_RANK: dict[str, int] = {"products": 0, "working": 1, "calibration": 0, "log": 0,
                             "product": 0, "qa": 0, "script": 0, "calibrated": 1}

# ---------------------------------------------------------------------------- style-dependent

# The pipeline manifest ships in script/ from Cycle 5 on (scriptForPI >= 1.23 reads it); the
# delivered Cycle-4 tree has none. Staging keeps it so that a later packaging can decide.
MANIFEST_FROM_CYCLE = 5

# Science images made by the pipeline (scriptForPI's own test, ../product/*_sci.spw*.fits): such
# data get an empty script/scriptForImaging.py when the analyst supplies none.
PIPELINE_SCIENCE_IMAGES = ("*_sci.spw*.fits",)

# A single-dish (TP) pipeline run: its recipe (hsd_calimage, ...) or jyperk.csv (docs/domain.md §4.1).
TP_RECIPE_PREFIX = "hsd"
# ... told from names alone (qa2_detect opens no file), strongest evidence first: the hsd recipe
# in the per-OUS names (<M>.hsd_calimage.weblog.tgz, 2017-07 on) or in working/'s procedure
# file, jyperk.csv (docs/domain.md §5.2 "TP (hsd)"), the TP images' ``.sd.fits``.
SINGLE_DISH_NAMES = ("*.hsd_*", "*procedure_hsd*", "*jyperk*.csv", "*.sd.fits", "*.sd.fits.gz")

# ---------------------------------------------------------------------------- validation

# Product types whose archive suffix changed from .tar.gz to .tgz in 2016-07 (docs/domain.md §5.2).
ERA_TYPES: dict[str, tuple[str, ...]] = {
    "caltables": ("calibration/*.caltables.tgz", "calibration/*.caltables.tar.gz"),
    "flagversions": ("calibration/*.flagversions.tgz", "calibration/*.flagversions.tar.gz"),
    "weblog": ("qa/*weblog.tgz", "qa/*weblog.tar.gz"),
    "auxcaltables": ("calibration/*.auxcaltables.tgz", "calibration/*.auxcaltables.tar.gz"),
}
# At most one of each in calibration/, counting the top-level members of every *auxproducts.tgz
# there (scriptForPI >= 1.23 untars them in calibration/ first): docs/domain.md §8.3 rule 13.
UNIQUE_CALIBRATION = ("*flux.csv", "*antennapos.csv", "*cont.dat", "*jyperk*.csv")
UNIQUE_SELFCAL = ("*selfcal.json",)  # styles with Style.unique_selfcal (S4d: Cycle 10 on)
AUXPRODUCTS = ("calibration/*auxproducts.tgz", "calibration/*auxproducts.tar.gz")
PPR_GLOBS = ("script/*PPR*.xml", "script/*pprequest.xml")
WEBLOG_MEMBER = ("pipeline-*/html", "pipeline-*/html/*")


# ---------------------------------------------------------------------------- eras (qa2 detect)

# What the names show of a pipeline input's era, first match wins: (names, era, suggested style).
# docs/layout-rules.md, "Cycle 5 and later"; docs/domain.md 2.6 (manifest and auxproducts from
# the 2017 pipeline), S4d (selfcal.json from Cycle 10).
ERAS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("*selfcal.json",), "Cycle >= 10 (pipeline self-calibration)", "cycle10-pipe"),
    (("member.uid___*", "member_ouss_id.*", "*.README.txt"), "Cycle >= 5 (member-prefixed names)",
     "cycle5-pipe"),
    (("*pipeline_manifest.xml", "*auxproducts.tgz"), "Cycle >= 5 (pipeline manifest, auxproducts)",
     "cycle5-pipe"),
    (("*.weblog.tgz", "*.caltables.tgz"), "Cycle 4 (tgz products)", "cycle4-pipe"),
    (("*.weblog.tar.gz", "*.caltables.tar.gz"), "Cycle 2-3 (tar.gz products)", "cycle3-pipe1"),
)
LATEST_BY_CYCLE = ((10, "cycle10-pipe", "Cycle >= 10 (project code)"),)  # a Cycle >= 5 era refined
