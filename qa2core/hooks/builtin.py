"""The core's own rules, registered as an ordinary plugin: what every package needs whatever
made it (docs/domain.md §8.1, §8.2 rule 5, §8.4 rule 18). The core calls them on every member
directory it validates, whichever plugin made it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from qa2core import hookimpl
from qa2core.checks import tgzcheck
from qa2core.data import images
from qa2core.hooks.model import MEMBER_DIRS, Finding, Level, PackageView, Purpose
from qa2core.planning import naming
from qa2core.planning.compression import GZIP_FILE_SUFFIXES
from qa2core.planning.rules import narrowed


@hookimpl
def qa2_validate(view: PackageView) -> list[Finding]:
    findings: list[Finding] = []
    files = set(view.files)
    tops = {name.split("/", 1)[0] for name in files}
    readme = naming.readme_of(files)  # README, or member.<MOUS>.README.txt since Cycle 5
    if readme is None:
        findings.append(Finding(Level.ERROR, "structure.readme", "README", "README is missing"))
    elif view.style.member_prefix and readme == naming.README:
        findings.append(Finding(Level.ERROR, "names.member_prefix", readme, f"style "
                                f"{view.style.name} names it <member>.README.txt (member.<MOUS>)"))
    for sub in MEMBER_DIRS:
        if sub not in tops and f"{sub}/" not in files:
            findings.append(Finding(Level.ERROR, "structure.subdirs", f"{sub}/",
                               f"member directory has no {sub}/"))
    if "raw" in tops:
        findings.append(Finding(Level.ERROR, "structure.raw", "raw/",
                           "raw/ is delivered by the ASDM tarballs, not in the package"))
    if view.style.noms:
        ms = [n for n in view.files if n.endswith("/") and fnmatchcase(n.rstrip("/"), "*.ms*")]
        for name in ms:
            findings.append(Finding(Level.ERROR, "structure.noms", name,
                               "measurement set in a noms package"))
    pi = narrowed(view, "script/").glob("script/*scriptForPI.py")
    if view.style.needs_piscript and len(pi) != 1:
        findings.append(Finding(Level.ERROR, "script.piscript", "script/",
                           f"exactly one scriptForPI.py needed, found {len(pi)}"))
    if view.style.compress_pb_mask and view.purpose is not Purpose.STAGE:  # staging never compresses
        for name in view.files:
            if name.startswith("product/") and name.lower().endswith(GZIP_FILE_SUFFIXES):
                findings.append(Finding(Level.ERROR, "product.compress", name,
                                   "primary-beam/mask image not compressed (ship it as .gz)"))
    findings += _product_rules(view)
    findings += archive_findings(view)
    findings += images.product_findings(view)  # FITS opened, read from view.open streams
    return findings


def _product_rules(view: PackageView) -> list[Finding]:
    """docs/domain.md §8.4 rule 17, first half: something to deliver (the PB partners are the
    plugins' rule: which images have one depends on who made them)."""
    if any(n.startswith("product/") and n != "product/" for n in view.files):
        return []
    return [Finding(Level.WARN, "product.empty", "product/", "product/ is empty")]


def archive_findings(view: PackageView) -> list[Finding]:
    """Every gzip tar the member carries (weblog, auxproducts, caltables, flagversions, a table or
    image qa2 packed, ...), as scriptForPI and the PI unpack them: one ERROR per archive, naming
    its first unsafe member (qa2core.checks.tgzcheck: absolute or ``..`` names, links out, devices,
    FIFOs, oversized headers) or why it cannot be read. Archives whose content is not at hand
    (fake packages, archives qa2 itself is to write) are known by name only."""
    findings = []
    for name in view.files:
        if not tgzcheck.is_archive(name):
            continue
        report = tgzcheck.scan_path(view.open, name)
        if report is None:
            continue
        if report.unsafe_count:
            more = f" and {report.unsafe_count - 1} more" if report.unsafe_count > 1 else ""
            findings.append(Finding(Level.ERROR, "archive.unsafe", name,
                                    f"unsafe to unpack: {report.unsafe[0]}{more}; scriptForPI "
                                    "and the PI untar it"))
        elif report.error:
            findings.append(Finding(Level.ERROR, "archive.unreadable", name,
                                    f"not a readable gzip tar ({report.error}): scriptForPI and "
                                    "the PI cannot unpack it"))
    return findings
