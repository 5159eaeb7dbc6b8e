"""The core's own rules, registered as an ordinary plugin: what every package needs whatever
made it (domain.md §8.1, §8.2 rule 5, §8.4 rule 18)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from qa2core import hookimpl
from qa2core.compression import GZIP_FILE_SUFFIXES
from qa2core.model import MEMBER_DIRS, Finding, Level, PackageView


def _f(level: Level, rule: str, path: str, message: str) -> Finding:
    return Finding(level, rule, path, message)


@hookimpl
def qa2_validate(view: PackageView, plugin: str) -> list[Finding]:
    findings: list[Finding] = []
    tops = {name.split("/", 1)[0] for name in view.files}
    if "README" not in view.files:
        findings.append(_f(Level.ERROR, "structure.readme", "README", "README is missing"))
    for sub in MEMBER_DIRS:
        if sub not in tops and f"{sub}/" not in view.files:
            findings.append(_f(Level.ERROR, "structure.subdirs", f"{sub}/",
                               f"member directory has no {sub}/"))
    if "raw" in tops:
        findings.append(_f(Level.ERROR, "structure.raw", "raw/",
                           "raw/ is delivered by the ASDM tarballs, not in the package"))
    if view.style.noms:
        ms = [n for n in view.files if fnmatchcase(n.rstrip("/"), "*.ms*") and n.endswith("/")]
        for name in ms:
            findings.append(_f(Level.ERROR, "structure.noms", name,
                               "measurement set in a noms package"))
    pi = view.glob("script/*scriptForPI.py")
    if view.style.needs_piscript and len(pi) != 1:
        findings.append(_f(Level.ERROR, "script.piscript", "script/",
                           f"exactly one scriptForPI.py needed, found {len(pi)}"))
    if view.style.compress_pb_mask and view.purpose != "stage":  # staging never compresses
        for name in view.files:
            if name.startswith("product/") and name.endswith(GZIP_FILE_SUFFIXES):
                findings.append(_f(Level.ERROR, "product.compress", name,
                                   "primary-beam/mask image not compressed (ship it as .gz)"))
    findings += _product_rules(view)
    return findings


# Pipeline calibrator images (bandpass, phase, amplitude, check source) ship without a primary
# beam in real deliveries (2016.1.01435.S: only ..._ph.spw19.mfs.I.pbcor.fits).
_CALIBRATOR_IMAGE = re.compile(r"_(bp|ph|amp|flux|pol|chk|check)\.spw")


def _pb_partner(stem: str, products: set[str]) -> bool:
    stems = {stem, stem.removesuffix(".image"), re.sub(r"\.tt\d$", "", stem)}
    beams = {p for p in products if not p.endswith(".pbcor.fits")}  # X.pbcor is not X.pb
    return any(p.startswith((f"{s}.pb", f"{s}.flux")) for s in stems for p in beams)


def _product_rules(view: PackageView) -> list[Finding]:
    """§8.4 rule 17: something to deliver, and a primary beam beside each pbcor image."""
    products = {n.removeprefix("product/") for n in view.files if n.startswith("product/")}
    products.discard("")
    if not products:
        return [_f(Level.WARN, "product.empty", "product/", "product/ is empty")]
    return [_f(Level.WARN, "product.pb_partner", f"product/{name}",
               "no primary-beam image (.pb.fits.gz, .pb.tt0.fits or .flux.fits.gz) beside it")
            for name in sorted(products)
            if name.endswith(".pbcor.fits") and not _CALIBRATOR_IMAGE.search(name)
            and not _pb_partner(name.removesuffix(".pbcor.fits"), products)]
