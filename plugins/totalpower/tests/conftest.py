"""Fixtures: a real manual Total Power reduction (real MSs, caltables, CASA image, FITS, ASDMs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa2core.testing.sampledata import Sample

pytest_plugins = ["qa2core.testing"]

PROJECT = "2016.1.00234.S"
EBS = ("uid___A002_Xc4f3ae_X57a5", "uid___A002_Xc4f3ae_X5c31")
CASA_VERSION = "4.7.2"
# Jy/K factors per EB, antenna and spw (XX/YY averaged), as the reducer measured them.
JYPERK = {
    EBS[0]: {"PM01": {17: 43.2, 19: 43.9}, "PM03": {17: 44.1, 19: 44.6}},
    EBS[1]: {"PM01": {17: 42.8, 19: 43.5}, "PM03": {17: 43.7, 19: 44.0}},
}


@pytest.fixture
def tp_pm(qa2_pm):
    """A manager with only this plugin: the tests do not depend on what else is installed."""
    from qa2_totalpower import plugin

    qa2_pm.register(plugin, name="totalpower")
    return qa2_pm


# --------------------------------------------------------------------------- script texts


_SD_STEPS = (
    "Import of the ASDM", "listobs", "A priori flagging", "Generation of the Tsys cal table",
    "Generation of the Sky cal table", "Do initial flagging", "Calibration of the data into Kelvins",
    "Subtracting the baseline", "Split and concatenation",
    "Convert the Science Target Units from Kelvin to Jansky",
)


def _step(n: int, body: str) -> str:
    return (f"# {_SD_STEPS[n]}\nmystep = {n}\nif(mystep in thesteps):\n"
            "  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')\n"
            "  print 'Step ', mystep, step_title[mystep]\n\n" + body + "\n")


def sd_calibration_script(eb: str) -> str:
    """``<EB>.ms.scriptForSDCalibration.py`` as the QA2 generator writes it (CASA 4.7, SDscience):
    the Jy/K factors close the script."""
    ms = f"{eb}.ms"
    titles = ",\n              ".join(f"{i}: {t!r}" for i, t in enumerate(_SD_STEPS))
    head = (
        "# ALMA Data Reduction Script\n\n# Calibration\n\nthesteps = []\n"
        f"step_title = {{{titles}}}\n\n"
        "try:\n  print 'List of steps to be executed ...', mysteps\n  thesteps = mysteps\n"
        "except:\n  print 'global variable mysteps not set.'\n"
        "if (thesteps==[]):\n  thesteps = range(0,len(step_title))\n"
        "  print 'Executing all steps: ', thesteps\n\n"
        "import os\nimport re\n\n"
        f"if re.search('^{CASA_VERSION}', casadef.casa_version) == None:\n"
        " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING "
        f"THE SCRIPT: {CASA_VERSION}')\n\n"
        "# OBSERVE_TARGET#ON_SOURCE: M100\n# OBSERVE_TARGET#OFF_SOURCE: M100\n\n"
    )
    factors = JYPERK[eb]
    jyperk = ",\n  ".join(
        f"'{ant}': {{" + ", ".join(f"{spw}: {{'mean': {v}, 'n': 2}}" for spw, v in spws.items()) + "}"
        for ant, spws in factors.items())
    steps = [
        _step(0, f"  if os.path.exists('{ms}') == False:\n"
                 f"    importasdm('{eb}', asis='Antenna Station Receiver Source CalAtmosphere "
                 "CalWVR', bdfflags=True, lazy=False, process_caldevice=False)\n"),
        _step(1, f"  listobs(vis = '{ms}', listfile = '{ms}.listobs')\n"),
        _step(2, f"  flagdata(vis = '{ms}', mode = 'manual', autocorr = False, "
                 "intent = '*POINTING*,*FOCUS*,*ATMOSPHERE*,*SIDEBAND_RATIO*', flagbackup = False)\n"),
        _step(3, f"  gencal(vis = '{ms}', caltable = '{ms}.tsys', caltype = 'tsys')\n"),
        _step(4, f"  sdcal(infile = '{ms}', outfile = '{ms}.sky', calmode = 'otfraster')\n"),
        _step(5, f"  flagdata(vis = '{ms}', mode = 'manual', spw = '17:0~119;3960~4079')\n"),
        _step(6, f"  sdcal(infile = '{ms}', calmode = 'apply', spw = '17,19', "
                 f"applytable = ['{ms}.tsys', '{ms}.sky'], spwmap = {{'9':[17], '11':[19]}}, "
                 f"interp = 'linear,cspline', outfile = '{ms}.sky.cal')\n"),
        _step(7, f"  sdbaseline(infile = '{ms}.sky.cal', datacolumn = 'corrected', spw = '17,19', "
                 "maskmode = 'auto', thresh = 5.0, avg_limit = 8, blfunc = 'poly', order = 1, "
                 f"outfile = '{ms}.cal.bl')\n"),
        _step(8, f"  os.system('rm -Rf {ms}.cal')\n  os.system('cp -Rf {ms}.cal.bl {ms}.cal')\n"),
        _step(9, f"  jyperk = \\\n{{ {jyperk}}}\n\n"
                 f"  os.system('rm -Rf {ms}.cal.jy')\n  os.system('cp -Rf {ms}.cal {ms}.cal.jy')\n"
                 "  for ant in jyperk.keys():\n    for spw in jyperk[ant].keys():\n"
                 f"      scaleAutocorr(vis='{ms}.cal.jy', scale=jyperk[ant][spw]['mean'], "
                 "antenna=ant, spw=spw)\n"),
    ]
    lines = [f"# Jy/K factors: spw{spw} XX {v} YY {v} ({ant})"
             for ant, spws in factors.items() for spw, v in spws.items()]
    return head + "\n".join(steps) + "\n" + "\n".join(lines) + "\n"


def sd_imaging_script(ebs: tuple[str, ...]) -> str:
    mss = ", ".join(f"'../{_cal_dir(eb)}/{eb}.ms.cal.jy'" for eb in ebs)
    return (
        "# ALMA Data Reduction Script\n\n# Imaging\n\n"
        f"msNames = [{mss}]\n\n"
        "sdimaging(infiles = msNames, field = 'M100', spw = '17', nchan = 70, mode = 'velocity', "
        "start = '1400km/s', width = '5km/s', veltype = 'radio', outframe = 'lsrk', "
        "restfreq = '115.271204GHz', gridfunction = 'SF', convsupport = 6, stokes = 'I', "
        "phasecenter = 'J2000 12h22m54.9 +15d49m15', ephemsrcname = '', imsize = [24, 24], "
        "cell = '9.0arcsec', overwrite = True, outfile = 'M100_TP_spw17.image')\n\n"
        "exportfits(imagename = 'M100_TP_spw17.image', fitsimage = 'M100_TP_spw17.image.fits')\n"
        "imsmooth(imagename = 'M100_TP_spw17.image', outfile = 'M100_TP_spw17.sd.im')\n"
        "exportfits(imagename = 'M100_TP_spw17.sd.im', fitsimage = 'M100_TP_spw17.sd.im.fits')\n"
    )


def casa_log(start: str, tasks: list[tuple[str, str]]) -> str:
    lines = [f"{start}:00\tINFO\t::casa\tCASA Version {CASA_VERSION}-REL (r39732)"]
    for task, detail in tasks:
        lines += [f"{start}:07\tINFO\t{task}::::casa\t##### Begin Task: {task:<21}#####",
                  f"{start}:07\tINFO\t{task}::::casa\t{task}({detail})",
                  f"{start}:09\tINFO\t{task}::::casa\t##### End Task: {task:<23}#####"]
    return "\n".join(lines) + "\n"


def jyperk_csv(ebs: tuple[str, ...]) -> str:
    rows = ["MS,Antenna,Spwid,Polarization,Factor"]
    for eb in ebs:
        for ant, spws in JYPERK[eb].items():
            rows += [f"{eb}.ms,{ant},{spw},{pol},{v}" for spw, v in spws.items() for pol in ("XX", "YY")]
    return "\n".join(rows) + "\n"


def _cal_dir(eb: str) -> str:
    return "Calibration_" + eb.rsplit("_", 1)[-1]


# --------------------------------------------------------------------------- the reduction


def build_tp_reduction(root: Path, ebs: tuple[str, ...] = EBS) -> Sample:
    """A manual TP reduction as a reducer leaves it: per-EB calibration dirs, imaging dir."""
    from qa2core.testing import sampledata as sd

    root.mkdir(parents=True)
    for i, eb in enumerate(ebs):
        cal = root / _cal_dir(eb)
        cal.mkdir()
        (cal / f"{eb}.ms.scriptForSDCalibration.py").write_text(sd_calibration_script(eb))
        ms = sd.make_ms(cal / f"{eb}.ms")
        sd.make_caltable(cal / f"{eb}.ms.tsys", ms, "B")
        sd.make_caltable(cal / f"{eb}.ms.sky", ms, "G")
        sd.make_ms(cal / f"{eb}.ms.cal.jy")
        sd.write_asdm(cal / f"{eb}.asdm.sdm", eb)
        (cal / f"casa-20170612-1{i}1502.log").write_text(casa_log(f"2017-06-12 1{i}:15", [
            ("importasdm", f'asdm="{eb}",vis="{eb}.ms"'),
            ("gencal", f'vis="{eb}.ms",caltable="{eb}.ms.tsys",caltype="tsys"'),
            ("sdcal", f'infile="{eb}.ms",outfile="{eb}.ms.sky",calmode="otfraster"'),
            ("sdbaseline", f'infile="{eb}.ms.sky.cal",blfunc="poly",order=1'),
        ]))
        (cal / "sdcal.last").write_text(f'taskname = "sdcal"\ninfile = "{eb}.ms"\n#sdcal()\n')
    img = root / "Imaging"
    img.mkdir()
    (img / "scriptForSDimaging.py").write_text(sd_imaging_script(ebs))
    image = sd.make_image(img / "M100_TP_spw17.image")
    sd.export_fits(image, img / "M100_TP_spw17.image.fits")
    sd.write_tp_image_fits(img / "M100_TP_spw17.sd.im.fits", obj="M100")
    (img / "casa-20170613-091000.log").write_text(casa_log("2017-06-13 09:10", [
        ("sdimaging", "infiles=[...],outfile=\"M100_TP_spw17.image\""),
        ("exportfits", 'imagename="M100_TP_spw17.image"'),
    ]))
    (root / "jyperk.csv").write_text(jyperk_csv(ebs))
    qa2 = root / "qa2"
    qa2.mkdir()
    for i, eb in enumerate(ebs):
        sd.write_plot_png(qa2 / f"{eb}.ms.tsys.spw17.png", seed=i)
    (qa2 / "textfile.txt").write_text("QA2 report, Total Power\nTarget: M100\n"
                                      "Median Tsys (K): spw17 131.2  spw19 128.7\n")

    readme = root.parent / "README.header.txt"
    readme.write_text(
        "Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 4\n"
        f"Project code: {PROJECT}\nSB name: M100_a_06_TP\nPI name: A. Reducer\n"
        f"CASA version used for reduction: {CASA_VERSION}\nQA2 Result: PASS\n"
        "Comments from Reducer: Total Power data\n#####\n")
    piscript = root.parent / "master" / "scriptForPI.py"
    piscript.parent.mkdir()
    piscript.write_text("# $Id: scriptForPI.py,v 2.5 2023/10/03 dpetry Exp $\nprint('PI')\n")
    return Sample(root, readme, piscript, ebs, PROJECT)


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
