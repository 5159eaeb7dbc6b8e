"""``qa2 verify``: does a package prove itself? Checksums, completeness, and the plugins' rules.

Levels (BagIt's, peers.md §1d): ``fast`` compares file count and bytes with the manifest and
journal; ``complete`` also requires every file listed and no file unlisted; ``full`` (default)
re-hashes everything, threaded. Structure rules run at every level through ``qa2_validate``,
asked of every plugin with the name of the plugin that claims the package.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from qa2core import fileops, journal, manifest, readme
from qa2core.errors import Qa2Error, UsageError
from qa2core.manager import Qa2Plugins, get_plugin_manager
from qa2core.model import Delivery, Finding, Level, PackageOptions, PackageView
from qa2core.scan import scan
from qa2core.styles import resolve_style

LEVELS = ("fast", "complete", "full")
PLACEHOLDER = re.compile(r"^(sg_ouss_id|(group|member)_ouss(_[\w-]+)?_id)$")
REAL = {"sg": re.compile(r"^science_goal\.uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+$"),
        "group": re.compile(r"^group\.uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+$"),
        "member": re.compile(r"^member\.uid___A\d{3}_X[0-9a-f]+_X[0-9a-f]+$")}
_OWN = {manifest.NAME, journal.NAME, ".qa2.lock", ".qa2-partial"}


@dataclass
class VerifyReport:
    packpath: str
    level: str
    plugin: str | None = None
    members: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level is Level.ERROR for f in self.findings)

    def to_json(self) -> dict:
        return {"ok": self.ok, "packpath": self.packpath, "level": self.level,
                "plugin": self.plugin, "members": self.members,
                "findings": [{"level": str(f.level), "rule": f.rule, "path": f.path,
                              "message": f.message} for f in self.findings]}


def members_of(pack: Path) -> list[str]:
    """Member directories (relative to PACKPATH) of the three-level OUS chain."""
    found = []
    for sg in sorted(p for p in pack.iterdir() if p.is_dir() and p.name not in _OWN):
        for group in sorted(p for p in sg.iterdir() if p.is_dir()):
            found += [f"{sg.name}/{group.name}/{m.name}" for m in sorted(group.iterdir()) if m.is_dir()]
    return found


def _files(pack: Path) -> dict[str, int]:
    out = {}
    for top in pack.iterdir():
        if top.name in _OWN or top.name.startswith("."):
            continue
        paths = [top] if top.is_file() else fileops.iter_files(top)
        for path in paths:
            out[path.relative_to(pack).as_posix()] = path.stat().st_size
    return out



def verify(packpath: Path | str, *, level: str = "full", for_ingestion: bool = False,
           style: str = "", jobs: int = 4, plugins: Qa2Plugins | None = None) -> VerifyReport:
    if level not in LEVELS:
        raise UsageError(f"unknown verify level {level!r}; valid: {', '.join(LEVELS)}")
    pack = Path(packpath)
    if not pack.is_dir():
        raise Qa2Error(f"{packpath}: not a directory, so not a qa2 package")
    members = members_of(pack)
    if not members:
        raise Qa2Error(f"{packpath}: not a qa2 package (no sg_ouss_id/group_ouss_id/member_ouss_id "
                       "or science_goal.*/group.*/member.* chain below it)")
    report = VerifyReport(str(packpath), level, members=members)
    on_disk = _files(pack)
    has_manifest = (pack / manifest.NAME).exists()
    report.findings += _names(members, for_ingestion)
    if has_manifest:
        report.findings += _checksums(pack, on_disk, level, jobs)
    else:
        report.findings.append(Finding(Level.INFO, "manifest.absent", manifest.NAME,
                                        "no manifest (a fake or ticket package): checksums not checked"))
    run = journal.run_info(pack)
    purpose = run.get("purpose") or _purpose_from_readme(pack, members)
    report.plugin, rules = _structure(pack, members, style or run.get("style", ""), purpose,
                                      has_manifest, plugins)
    report.findings += rules
    return report


def _names(members: list[str], for_ingestion: bool) -> list[Finding]:
    out = []
    for member in members:
        for part, kind in zip(member.split("/"), ("sg", "group", "member"), strict=True):
            if PLACEHOLDER.match(part):
                if for_ingestion:
                    out.append(Finding(Level.ERROR, "structure.placeholder", member,
                                        f"placeholder {part!r}: the archive needs real OUS names "
                                        "(qa2 package/tar --ous-uids SOUS,GOUS,MOUS)"))
                    break
            elif not REAL[kind].match(part):
                out.append(Finding(Level.ERROR, "structure.ous_name", member,
                                    f"{part!r} is neither a placeholder nor {kind}.uid___A00x_X.._X.."))
    return out


def _checksums(pack: Path, on_disk: dict[str, int], level: str, jobs: int) -> list[Finding]:
    try:
        listed = manifest.read(pack)
    except Qa2Error as exc:
        return [Finding(Level.ERROR, "manifest.line", manifest.NAME, str(exc))]
    out = []
    missing = sorted(set(listed) - set(on_disk))
    out += [Finding(Level.ERROR, "manifest.missing", p, "listed in the manifest but missing")
            for p in missing]
    if level == "fast":
        sizes = {k: e.size for k, e in journal.load(pack).items()}
        total_disk = sum(on_disk[p] for p in listed if p in on_disk)
        total_want = sum(sizes.get(p, on_disk.get(p, 0)) for p in listed)
        if len(on_disk) != len(listed) or total_disk != total_want:
            out.append(Finding(Level.ERROR, "manifest.oxum", manifest.NAME,
                                f"{len(on_disk)} files / {total_disk} bytes on disk, manifest and "
                                f"journal say {len(listed)} files / {total_want} bytes"))
        return out
    out += [Finding(Level.ERROR, "manifest.unlisted", p, "file not listed in the manifest")
            for p in sorted(set(on_disk) - set(listed))]
    if level == "complete":
        return out
    present = [p for p in sorted(listed) if p in on_disk]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        digests = pool.map(lambda p: fileops.hash_file(pack / p), present)
        for path, digest in zip(present, digests, strict=True):
            if digest != listed[path]:
                out.append(Finding(Level.ERROR, "manifest.checksum", path,
                                    "sha256 differs from the manifest (corrupted or changed)"))
    return out


def _purpose_from_readme(pack: Path, members: list[str]) -> str:
    """A package's README carries qa2's listing; a staged tree's is the pipeline README as is."""
    for member in members:
        try:
            if readme.LISTING_INTRO in (pack / member / "README").read_bytes():
                return "package"
        except OSError:
            continue
    return "stage"


def _structure(pack: Path, members: list[str], style: str, purpose: str, real: bool,
               plugins: Qa2Plugins | None) -> tuple[str | None, list[Finding]]:
    plugins = plugins or get_plugin_manager()
    items, _ = scan(pack)
    delivery = Delivery(pack.resolve(), items, resolve_style(style), PackageOptions(purpose="verify"))
    if purpose == "stage":
        out_note = [Finding(Level.INFO, "verify.staged", str(pack),
                             "checked as a staged tree (written by qa2 stage, not yet packaged)")]
    else:
        out_note = []
    ranked = plugins.claims(delivery)
    top = [r for r in ranked if ranked and r.claim.score == ranked[0].claim.score]
    chosen = top[0].plugin if len(top) == 1 else ""
    out = out_note
    if not chosen:
        out.append(Finding(Level.WARN, "structure.plugin", str(pack),
                            "no single plugin recognises this package; only the core's rules ran"))
    for member in members:
        base = pack / member
        files = tuple(sorted({*_member_listing(base)}))

        def read(rel: str, base: Path = base) -> bytes | None:
            path = base / rel
            return path.read_bytes() if real and path.is_file() else None

        view = PackageView(files, _style_of(style, files), chosen, "copy" if real else "fake",
                           purpose, read)
        out += [Finding(f.level, f.rule, f"{member}/{f.path}", f.message)
                for f in plugins.validate(view, chosen)]
    return chosen or None, out


def _style_of(style: str, files: tuple[str, ...]):
    """The style given, or the one the package shows: calibrated/ means Cycle 0 (noms off)."""
    if style:
        return resolve_style(style)
    if any(f.startswith("calibrated/") for f in files):
        return resolve_style("cycle0-nopipe")
    return resolve_style("")


def _member_listing(base: Path) -> list[str]:
    """Member-relative names as the planner lists them: a casacore table shipped whole is one
    ``name/`` entry, and an empty subdirectory is ``sub/``."""
    names = []
    for dirpath, dirnames, filenames in os.walk(base):
        rel = Path(dirpath).relative_to(base).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if prefix and "table.dat" in filenames:
            names.append(prefix)
            dirnames.clear()
            continue
        names += [prefix + f for f in filenames]
        if not filenames and not dirnames and prefix:
            names.append(prefix)  # an empty member subdirectory still exists
    return names


