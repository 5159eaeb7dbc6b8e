"""The modern member README (issue 22): qa2's HOW TO / DATA CATEGORIES / FILES sections between
the reducer's header and the listing, filled from what the member directory holds.

Pure functions: no tree is written. Realistic listings (a Cycle >= 5 pipeline member, a manual
re-imaging member, a placeholder member) and a Hypothesis property over generated listings.
"""

from __future__ import annotations

import atexit
import random
import re
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from qa2core.writing import readme
from qa2core.writing.readme import Modern

# No example database and no failure patches in the work tree: a private scratch home.
_HOME = tempfile.mkdtemp(prefix="qa2-hypothesis-")
atexit.register(shutil.rmtree, _HOME, True)
set_hypothesis_home_dir(_HOME)

PROJECT = "2017.1.00271.S"
MOUS = "uid___A001_X1284_X1ef2"
TOKEN = f"member.{MOUS}"
PLACEHOLDER = "member_ouss_id"
EB = "uid___A002_Xc7111c_X3979"
HEADER = (b"Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 5\n"
          b"Project code: 2017.1.00271.S\nMember OUS: uid://A001/X1284/X1ef2\n"
          b"CASA version used for reduction: 5.1.1-5\nComments from Reducer:\n#####\n")

PIPELINE = [  # a Cycle >= 5 pipeline member, final names ({T} = the member token)
    "{T}.README.txt",
    "calibration/{T}.hifa_calimage.auxproducts.tgz",
    "calibration/{T}.session_1.caltables.tgz",
    f"calibration/{EB}.ms.calapply.txt",
    f"calibration/{EB}.ms.flagversions.tgz",
    "log/casa-20180321-101010.log",
    "log/{T}.hifa_calimage.casa_commands.log",
    "product/{T}.J1924-2914_bp.spw16.mfs.I.pbcor.fits",
    "product/{T}.NGC253_sci.spw16.cube.I.mask.fits.gz",
    "product/{T}.NGC253_sci.spw16.cube.I.pb.fits.gz",
    "product/{T}.NGC253_sci.spw16.cube.I.pbcor.fits",
    "product/{T}.NGC253_sci.spw16_18_20_22.cont.I.pbcor.fits",
    "qa/{T}.hifa_calimage.weblog.tgz",
    "qa/{T}.qa2_report.pdf",
    "script/PPR_uid___A001_X1284_X1ef0.xml",
    "script/scriptForImaging.py",
    "script/{T}.hifa_calimage.casa_piperestorescript.py",
    "script/{T}.hifa_calimage.casa_pipescript.py",
    "script/{T}.hifa_calimage.pipeline_manifest.xml",
    "script/{T}.scriptForPI.py",
]
MANUAL = [  # a manual member: no FITS (masks and beams shipped as tarred CASA images), no weblog
    "{T}.README.txt",
    f"calibration/{EB}.calibration.tgz",
    f"calibration/{EB}.calibration.plots/amp_vs_time.png",
    "calibration/allFluxes.txt",
    "log/casa-20190101-000000.log",
    "product/NGC253_sci.spw0.cube.I.manual.mask.tgz",
    "product/NGC253_sci.spw0.cube.I.manual.pb.tgz",
    "qa/{T}.qa2_report.html",
    f"script/{EB}.ms.scriptForCalibration.py",
    "script/scriptForFluxCalibration.py",
    "script/scriptForImaging.py",
    "script/scriptForImagingPrep.py",
    "script/{T}.scriptForPI.py",
]


def named(listing: list[str], token: str) -> list[str]:
    return [p.replace("{T}", token) for p in listing]


def real(pipeline: bool = True, casa: str | None = "5.1.1-5") -> Modern:
    return Modern(TOKEN, PROJECT, MOUS, pipeline, casa)


PLACEHOLDERS = Modern(PLACEHOLDER, PROJECT, None, True, "5.1.1-5")


def section(block: str, name: str) -> str:
    """The text of section ``name`` (its lines up to the next blank line)."""
    m = re.search(rf"(?m)^{name}\n=+\n(.*?)(?:\n\n|\Z)", block, re.DOTALL)
    assert m, (name, block)
    return m.group(1)


def files_patterns(block: str) -> list[str]:
    return [line.split()[0] for line in section(block, "FILES").splitlines() if line.startswith("     ")]


def glob_match(pattern: str, path: str) -> bool:
    """A shell glob on a member-relative path, written independently of the module: ``*`` is any
    run of characters but ``/``, ``[x]`` is a literal x; everything else literal."""
    rx = "".join("[^/]*" if tok == "*" else re.escape(tok[1:-1] if tok.startswith("[") else tok)
                 for tok in re.findall(r"\[.\]|\*|[^*\[]+|\[", pattern))
    return re.fullmatch(rx, path.rstrip("/")) is not None


def check_shape(block: bytes) -> None:
    text = block.decode("utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    lines = text.splitlines()
    assert lines[:2] == ["ALMA Member ObsUnitSet README", "=" * 29]
    for name in ("HOW TO", "DATA CATEGORIES", "FILES"):
        i = lines.index(name)
        assert lines[i + 1] == "=" * len(name) and lines[i - 1] == ""
    assert lines.index("HOW TO") < lines.index("DATA CATEGORIES") < lines.index("FILES")


# ---------------------------------------------------------------------------- realistic members

def test_pipeline_member_with_fits_weblog_manifest_and_caltables():
    listing = named(PIPELINE, TOKEN)
    block = readme.modern_sections(listing, real())
    check_shape(block)
    text = block.decode()
    assert text.isascii()
    assert f"{TOKEN} ({PROJECT}) as packaged by qa2" in text.splitlines()[2]
    how = section(text, "HOW TO")
    assert "* Get the FITS images" in how
    assert f"{PROJECT}_{MOUS}_NNN_of_MMM.tar" in how and f"{PROJECT}_{MOUS}_auxiliary.tar" in how
    assert f"qa/{TOKEN}.qa2_report.pdf (QA2 report)" in how
    assert f"qa/{TOKEN}.hifa_calimage.weblog.tgz (pipeline web log)" in how
    assert "index.html" in how
    assert f"cd script; casa --pipeline -c {TOKEN}.scriptForPI.py" in how
    assert "raw/, beside script/" in how and "CASA 5.1.1-5, with the ALMA pipeline" in how
    cats = section(text, "DATA CATEGORIES")
    assert [line.split()[1] for line in cats.splitlines()] == ["auxiliary", "product", "raw"]
    assert "not in this package" in cats.splitlines()[2]
    patterns = files_patterns(text)
    for want in ("*README.txt", "product/*cont*pbcor.fits", "product/*cube*pbcor.fits",
                 "product/*.pb*.fits.gz", "product/*.mask*.fits.gz", "qa/*qa2_report.*",
                 "qa/*weblog.tgz", "script/*scriptForPI.py", "script/*casa_piperestorescript.py",
                 "script/*casa_pipescript.py", "script/*pipeline_manifest.xml", "script/*PPR*.xml",
                 "script/*scriptForImaging.py", "calibration/*caltables.tgz",
                 "calibration/*auxproducts.tgz", "calibration/*flagversions.tgz",
                 "calibration/*calapply.txt", "log/*casa_commands.log", "log/*.log"):
        assert want in patterns, (want, patterns)
    # the calibrator's mfs image is no cont or cube: it is told as what it is
    assert "product/*pbcor*.fits" in patterns
    for absent in ("product/*sd.im.fits", "calibration/*.calibration.tgz",
                   "script/*.ms.scriptForCalibration.py", "qa/*qa0_report.*"):
        assert absent not in patterns
    assert not any(p.count("/") and p.endswith("/*") for p in patterns)  # nothing left over
    assert len(patterns) == len(set(patterns))


def test_manual_member_without_fits_has_no_product_category():
    listing = named(MANUAL, TOKEN)
    block = readme.modern_sections(listing, real(pipeline=False, casa=None))
    check_shape(block)
    text = block.decode()
    how, cats = section(text, "HOW TO"), section(text, "DATA CATEGORIES")
    assert "FITS" not in how and "NNN_of_MMM" not in text and "product" not in cats
    assert [line.split()[1] for line in cats.splitlines()] == ["auxiliary", "raw"]
    assert "weblog" not in text and "web log" not in text and "--pipeline" not in text
    assert f"qa/{TOKEN}.qa2_report.html (QA2 report)" in how
    assert f"cd script; casa -c {TOKEN}.scriptForPI.py" in how
    assert "the CASA version the header above names" in how
    patterns = files_patterns(text)
    for want in ("script/*.ms.scriptForCalibration.py", "script/*scriptForFluxCalibration.py",
                 "script/*scriptForImagingPrep.py", "script/*scriptForImaging.py",
                 "calibration/*.calibration.tgz", "calibration/*.calibration.plots/*",
                 "product/*.tgz", "qa/*qa2_report.*"):
        assert want in patterns, (want, patterns)
    assert not any(p.startswith("product/") and "fits" in p for p in patterns)
    # allFluxes.txt has no rule of its own: the catch-all names it
    assert "calibration/*" in patterns and "1 more entry" in section(text, "FILES")


def test_how_to_items_follow_the_files():
    base = [f"script/{TOKEN}.scriptForPI.py", f"calibration/{TOKEN}.session_1.caltables.tgz"]
    text = readme.modern_sections(base, real()).decode()
    assert "Check the quality" not in text and "FITS" not in text and "QA2 report" not in text
    assert "Create the calibrated" in text
    only_weblog = [*base, f"qa/{TOKEN}.hifa_calimage.weblog.tgz"]
    how = section(readme.modern_sections(only_weblog, real()).decode(), "HOW TO")
    assert "pipeline web log" in how and "QA2 report" not in how
    no_pi = [f"qa/{TOKEN}.qa2_report.pdf", "product/X_sci.spw0.cube.I.PBCOR.FITS"]
    text = readme.modern_sections(no_pi, real()).decode()
    assert "Create the calibrated" not in text and "scriptForPI" not in text
    assert "* Get the FITS images" in text and "* product" in text  # any letter case
    assert "product/*" in files_patterns(text)  # upper-case names: told by the catch-all
    gz = readme.modern_sections(["product/a.cube.pbcor.fits.GZ"], real()).decode()
    assert "* product" in gz
    fits_dir = readme.modern_sections(["product/a.fits/", "qa/b.fits"], real()).decode()
    assert "* product" not in fits_dir and "FITS" not in section(fits_dir, "HOW TO")
    # several scriptForPIs (an old unprefixed one too): the member's own is named
    two = [*base, "script/scriptForPI.py"]
    assert f"-c {TOKEN}.scriptForPI.py" in readme.modern_sections(two, real()).decode()


def test_deterministic_whatever_the_listing_order():
    listing = named(PIPELINE, TOKEN)
    want = readme.modern_sections(listing, real())
    rng = random.Random(22)
    for _ in range(5):
        shuffled = listing[:]
        rng.shuffle(shuffled)
        assert readme.modern_sections(tuple(shuffled), real()) == want
        assert readme.assemble(HEADER, TOKEN, shuffled, real()) == readme.assemble(HEADER, TOKEN, listing,
                                                                                    real())


def test_placeholder_member():
    listing = named(PIPELINE, PLACEHOLDER)
    text = readme.modern_sections(listing, PLACEHOLDERS).decode()
    check_shape(text.encode())
    assert f"{PROJECT}_{PLACEHOLDER}_NNN_of_MMM.tar" in text
    assert f"{PROJECT}_{PLACEHOLDER}_auxiliary.tar" in text
    assert f"casa --pipeline -c {PLACEHOLDER}.scriptForPI.py" in text
    assert "uid___" not in section(text, "HOW TO").replace(f"{EB}", "")


def test_readme_name():
    assert readme.readme_name(None) == "README"
    assert readme.readme_name(TOKEN) == "member.uid___A001_X1284_X1ef2.README.txt"
    assert readme.readme_name(PLACEHOLDER) == "member_ouss_id.README.txt"


# ---------------------------------------------------------------------------- assemble, header_of

def old_assemble(header: bytes, top: str, paths: list[str]) -> bytes:
    """assemble as it was before issue 22 (the code path modern=None must keep)."""
    sep = b"" if not header or header.endswith(b"\n") else b"\n"
    intro = b"\n" + readme.RULE + b"\n" + readme.LISTING_INTRO + b"\n\n"
    return header + sep + intro + readme.tree_listing(top, paths).encode()


@pytest.mark.parametrize("header", [HEADER, b"", b"no newline at the end", b"caf\xc3\xa9\n"])
@pytest.mark.parametrize("listing", [PIPELINE, MANUAL, ["README"], []])
def test_assemble_without_modern_is_unchanged(header, listing):
    paths = named(listing, PLACEHOLDER)
    got = readme.assemble(header, PLACEHOLDER, paths)
    assert got == old_assemble(header, PLACEHOLDER, paths)
    assert got == readme.assemble(header, PLACEHOLDER, paths, None)
    assert b"ALMA Member ObsUnitSet README" not in got


def test_assemble_without_modern_golden():
    got = readme.assemble(b"H: 1", "member_ouss_id", ["README", "script/a.py"])
    assert got == (b"H: 1\n\n#####\nContents of this member directory as packaged by qa2 (raw/ is added by "
                   b"the ASDM tarballs):\n\nmember_ouss_id/\n|-- script/\n|   `-- a.py\n`-- README\n")


def test_assemble_modern_is_header_sections_then_todays_listing():
    listing = named(PIPELINE, TOKEN)
    got = readme.assemble(HEADER, TOKEN, listing, real())
    block = readme.modern_sections(listing, real())
    assert got == HEADER + b"\n" + block + old_assemble(b"", TOKEN, listing)
    assert got.startswith(HEADER) and got.endswith(old_assemble(b"", TOKEN, listing))
    assert readme.LISTING_INTRO in got  # verify's _purpose_from_readme still tells a package


@pytest.mark.parametrize("header", [HEADER, b"", b"Project code: 2017.1.00271.S",
                                    # a header quoting an ALMA member README keeps all of it
                                    HEADER + b"\nALMA Member ObsUnitSet README\n" + b"=" * 29
                                    + b"\nBrief description\n\nHOW TO\n======\n"])
def test_header_of_round_trip(header):
    for listing, modern in ((named(PIPELINE, TOKEN), real()), (named(MANUAL, TOKEN), real(False)),
                            (named(PIPELINE, PLACEHOLDER), PLACEHOLDERS)):
        data = readme.assemble(header, modern.token, listing, modern)
        want = header + (b"\n" if header and not header.endswith(b"\n") else b"")
        assert readme.header_of(data) == want
        assert readme.header_of(data) == readme.header_of(readme.assemble(header, modern.token, listing))
        if b"Project code" in header:
            assert readme.header_project_code(data) == PROJECT
    assert readme.header_of(b"plain README, no qa2 listing\n") == b"plain README, no qa2 listing\n"


# ---------------------------------------------------------------------------- renamed

def test_renamed_modern_readme_gives_the_real_names_everywhere():
    header = HEADER + b"Comment: member_ouss_id stays as the reducer wrote it\n"
    data = readme.assemble(header, PLACEHOLDER, named(PIPELINE, PLACEHOLDER), PLACEHOLDERS)
    assert data.count(PLACEHOLDER.encode()) > 20
    new = readme.renamed(data, PLACEHOLDER, TOKEN)
    assert readme.header_of(new) == header  # the header is the reducer's: untouched
    rest = new[len(header):]
    assert PLACEHOLDER.encode() not in rest
    assert f"{PROJECT}_{MOUS}_NNN_of_MMM.tar".encode() in rest
    assert f"{PROJECT}_{MOUS}_auxiliary.tar".encode() in rest
    assert f"casa --pipeline -c {TOKEN}.scriptForPI.py".encode() in rest
    assert f"\n{TOKEN}/\n".encode() in rest and f"-- {TOKEN}.README.txt\n".encode() in rest
    # the same bytes as a README written with the real names (this listing sorts alike)
    assert new == readme.assemble(header, TOKEN, named(PIPELINE, TOKEN), real())
    assert readme.renamed(data, "member.uid___A001_X1_X1", TOKEN) == data  # listing starts elsewhere


def test_renamed_real_to_real_and_old_readmes_unchanged():
    other = "uid___A001_X9_X9"
    data = readme.assemble(HEADER, TOKEN, named(PIPELINE, TOKEN), real())
    new = readme.renamed(data, TOKEN, f"member.{other}")
    assert MOUS.encode() not in new[len(HEADER):] and f"{PROJECT}_{other}_auxiliary.tar".encode() in new
    # an old README: only the listing's top line changes, as before issue 22
    listing = named(PIPELINE, PLACEHOLDER)
    old = readme.assemble(HEADER, PLACEHOLDER, listing)
    got = readme.renamed(old, PLACEHOLDER, TOKEN)
    top = old.index(b"\nmember_ouss_id/\n") + 1
    assert got == old[:top] + f"{TOKEN}/\n".encode() + old[top + len(b"member_ouss_id/\n"):]
    assert got.count(PLACEHOLDER.encode()) == old.count(PLACEHOLDER.encode()) - 1
    assert readme.renamed(b"a staged README\n", PLACEHOLDER, TOKEN) == b"a staged README\n"


# ---------------------------------------------------------------------------- property

_TEMPLATES = sorted({*PIPELINE, *MANUAL, "product/{T}.X_sci.spw5.mfs.I.sd.im.fits",
                     "product/{T}.X_sci.spw5.cont.I.alpha.error.fits", "qa/uid___A002_X1_X2.qa0_report.pdf",
                     "calibration/{T}.session_1.auxcaltables.tgz", "calibration/uid___A002_X1_X2.ms.flux.csv",
                     "script/uid___A002_X1_X2.ms.scriptForSDCalibration.py", "calibration/x.eph",
                     "product/x.image/", "calibration/y.ms.split.cal/", "external/notes.txt"})
_DIRS = ["", "product/", "qa/", "script/", "calibration/", "log/", "product/sub/", "calibration/p/q/",
         "extra/"]
_SUFFIXES = [".fits", ".FITS", ".fits.gz", ".Fits.GZ", ".pbcor.fits", ".tgz", ".py", ".log", ".txt",
             ".xml", "/", ""]
_name = st.text("abcXYZ019._-", min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))
_random = st.builds(lambda d, n, s: d + n + s, st.sampled_from(_DIRS), _name, st.sampled_from(_SUFFIXES))
_listing = st.lists(st.one_of(st.sampled_from(_TEMPLATES), _random), max_size=30)
_modern = st.builds(lambda token, pipeline, casa: Modern(token, PROJECT, None if token == PLACEHOLDER
                                                         else MOUS, pipeline, casa),
                    st.sampled_from([TOKEN, PLACEHOLDER]), st.booleans(), st.sampled_from([None, "6.5.4.9"]))


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_listing, _modern)
def test_every_files_line_names_something_and_product_iff_fits(templates, modern):
    listing = named(templates, modern.token)
    block = readme.modern_sections(listing, modern)
    check_shape(block)
    text = block.decode()
    entries = {p for p in listing if p.strip("/")}
    patterns = files_patterns(text)
    assert len(patterns) == len(set(patterns))
    for pattern in patterns:  # no line for a kind of file the member lacks
        assert any(glob_match(pattern, p) for p in entries), (pattern, sorted(entries))
    for path in entries:  # and every entry is told by some line
        assert any(glob_match(pattern, path) for pattern in patterns), (path, patterns)
    fits = any(p.startswith("product/") and not p.endswith("/") and p.lower().endswith((".fits", ".fits.gz"))
               for p in listing)
    cats = [line.split()[1] for line in section(text, "DATA CATEGORIES").splitlines()]
    assert cats == ["auxiliary", *(["product"] * fits), "raw"]
    how = section(text, "HOW TO")
    assert ("* Get the FITS images" in how) == fits == ("NNN_of_MMM" in text)
    assert ("(pipeline web log)" in how) == any(glob_match("qa/*weblog.tgz", p) for p in entries
                                                if not p.endswith("/"))
    assert ("(QA2 report)" in how) == any(glob_match("qa/*qa2_report.*", p) for p in entries
                                          if not p.endswith("/"))
    pis = [p for p in listing if glob_match("script/*scriptForPI.py", p) and not p.endswith("/")]
    assert ("* Create the calibrated" in how) == bool(pis)
    if pis:
        run = re.search(r"(?m)cd script; casa (--pipeline )?-c (\S+)$", how)
        assert run and f"script/{run.group(2)}" in pis and bool(run.group(1)) == modern.pipeline
    # the same bytes whatever the order; renaming the placeholders leaves none after the header
    assert readme.modern_sections(sorted(listing, reverse=True), modern) == block
    if modern.token == PLACEHOLDER:
        data = readme.assemble(HEADER, PLACEHOLDER, listing, modern)
        new = readme.renamed(data, PLACEHOLDER, TOKEN)
        assert readme.header_of(new) == HEADER and PLACEHOLDER.encode() not in new[len(HEADER):]
