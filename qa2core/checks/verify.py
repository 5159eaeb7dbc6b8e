"""``qa2 verify``: does a package prove itself? Checksums, completeness, and the plugins' rules.

Levels (BagIt's): ``fast`` compares file count and bytes with the manifest and journal;
``complete`` also requires every file listed and no file unlisted; ``full`` (default) re-hashes
everything, threaded. Nothing is followed or opened blindly: a symbolic link or special file in
a package is an ERROR naming it. A package without a manifest cannot prove its content: it is
a rehearsal (fake, ticket), never deliverable. Structure rules run through ``qa2_validate`` of
the plugin that claims the package, the built-in rules and cross-cutting plugins.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qa2core.bulk import fewer_collections
from qa2core.checks import content, member_names
from qa2core.errors import Qa2Error, UsageError
from qa2core.hooks.manager import Qa2Plugins, get_plugin_manager
from qa2core.hooks.model import UID, Delivery, Finding, Level, Mode, PackageOptions, PackageView, Purpose
from qa2core.planning import naming, ous, paths, piscript
from qa2core.planning.ous import members_of
from qa2core.planning.scan import scan
from qa2core.planning.styles import Style, resolve_style
from qa2core.writing import fileops, journal, manifest, readme

LEVELS = ("fast", "complete", "full")
PLACEHOLDER = re.compile(r"^(sg_ouss_id|(group|member)_ouss(_[\w-]+)?_id)$")
REAL = {level: re.compile(rf"^{prefix}\.{UID.pattern}$")
        for level, prefix in (("sg", "science_goal"), ("group", "group"), ("member", "member"))}
FAKE = "FAKE package (names only): not deliverable"
INGESTION_ERRORS = frozenset({"product.fits"})  # warnings while packaging, refusals for the archive


@dataclass
class VerifyReport:
    packpath: str
    level: str
    plugin: str | None = None
    mode: str = ""
    members: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level is Level.ERROR for f in self.findings)

    def to_json(self) -> dict:
        return {"ok": self.ok, "packpath": self.packpath, "level": self.level,
                "plugin": self.plugin, "mode": self.mode, "members": self.members,
                "findings": [{"level": str(f.level), "rule": f.rule, "path": f.path,
                              "message": f.message} for f in self.findings]}


def _walk(pack: Path) -> tuple[dict[str, int], list[Finding]]:
    """Regular files below PACKPATH (relative path -> size), and every link or special file."""
    out, bad = {}, []
    cut = len(str(pack)) + 1
    for path, st in fileops.iter_package_files(str(pack)):
        rel = path[cut:]
        if stat.S_ISREG(st.st_mode):
            out[rel] = st.st_size
        else:
            bad.append(Finding(Level.ERROR, "structure.special", rel,
                               f"{fileops.special_kind(st.st_mode)} in the package: a delivery "
                               "holds regular files only (never followed, never opened)"))
    out.pop(manifest.NAME, None)
    return out, bad


def verify(packpath: Path | str, *, level: str = "full", for_ingestion: bool = False,
           style: str = "", jobs: int = 4, plugins: Qa2Plugins | None = None) -> VerifyReport:
    with fewer_collections():  # not a decorator: mutmut leaves decorated functions alone
        return _verify(packpath, level, for_ingestion, style, jobs, plugins)


def _verify(packpath: Path | str, level: str, for_ingestion: bool, style: str, jobs: int,
            plugins: Qa2Plugins | None) -> VerifyReport:
    if level not in LEVELS:
        raise UsageError(f"unknown verify level {level!r}; valid: {', '.join(LEVELS)}")
    pack = Path(os.path.abspath(packpath))  # "." has no name; its project code is the directory's
    if not pack.exists():
        raise UsageError(f"{packpath}: PACKPATH does not exist")
    if not pack.is_dir():
        raise Qa2Error(f"{packpath}: not a directory, so not a qa2 package")
    members = members_of(pack)
    if not members:
        raise Qa2Error(f"{packpath}: not a qa2 package (no sg_ouss_id/group_ouss_id/member_ouss_id "
                       "or science_goal.*/group.*/member.* chain below it)")
    book = journal.load(pack)
    run = book.run
    report = VerifyReport(str(packpath), level, members=members, mode=run.get("mode", ""))
    on_disk, report.findings = _walk(pack)
    report.findings += _interrupted(pack)
    report.findings += _outside_tree(pack, members)
    report.findings += _names(members, for_ingestion)
    report.findings += _placeholders(pack, members, for_ingestion)
    has_manifest = (pack / manifest.NAME).is_file() and not (pack / manifest.NAME).is_symlink()
    # One read per byte: the rules read their files through hashing streams (_Tee), and the
    # checksum pass hashes only what they did not read to the end.
    read = {} if has_manifest and level == "full" else None
    purpose = Purpose(run["purpose"]) if run.get("purpose") in ("package", "stage") else \
        _purpose_from_readme(pack, members)
    made_by = book.members or {m: run for m in members if run.get("plugin")}
    report.plugin, rules = _structure(pack, members, style, purpose, has_manifest, made_by,
                                      plugins, for_ingestion, read)
    if has_manifest:
        report.findings += _checksums(pack, on_disk, level, jobs, read or {})
    elif run.get("mode") in (str(Mode.COPY), str(Mode.HARD)):
        report.findings.append(Finding(Level.ERROR, "manifest.absent", manifest.NAME,
                                       f"the package was written in mode {run['mode']} but its "
                                       "manifest is missing: its content cannot be proven"))
    else:
        level_ = Level.ERROR if for_ingestion else Level.WARN
        report.findings.append(Finding(level_, "package.fake", str(packpath),
                                       f"{FAKE} (no manifest-sha256.txt; written in mode "
                                       f"{run.get('mode') or 'unknown'})"))
    if purpose is Purpose.PACKAGE:
        report.findings += _delivery_rules(pack, members, for_ingestion)
    # For ingestion, a product that is not a readable FITS is no product (content certifies).
    report.findings += [Finding(Level.ERROR, f.rule, f.path, f.message)
                        if for_ingestion and f.rule in INGESTION_ERRORS else f for f in rules]
    return report


def _head(path: Path, size: int = 1 << 20) -> bytes | None:
    try:
        with os.fdopen(fileops.open_source(str(path), follow=False), "rb") as fh:
            return fh.read(size)
    except (OSError, Qa2Error):
        return None


def _delivery_rules(pack: Path, members: list[str], for_ingestion: bool) -> list[Finding]:
    """Names and README of a delivery (docs/domain.md §8.1 rule 1, §8.2 rule 11, §8.5 rule 22);
    what only warns while packaging is an ERROR for ingestion."""
    strict = Level.ERROR if for_ingestion else Level.WARN
    out = []
    if not ous.PROJECT_CODE.match(pack.name):
        out.append(Finding(strict, "structure.project_code", pack.name, "PACKPATH is not named "
                           "after a project code (like 2016.1.01435.S)"))
    for member in members:
        name = naming.readme_of(fileops.names_in(pack / member)) or naming.README
        text = _head(pack / member / name)
        if text is not None:
            code = readme.header_project_code(text)
            if not readme.header_of(text).strip() or readme.unfilled(readme.header_of(text)):
                out.append(Finding(strict, "readme.header", f"{member}/{name}", "README has no "
                                   "header, or its template's <fill in> fields (project code, "
                                   "SB, PI, CASA version: --readme)"))
            elif code != pack.name:
                out.append(Finding(strict, "readme.project_code", f"{member}/{name}",
                                   f"header says project code {code or '(none)'}, PACKPATH is "
                                   f"{pack.name}"))
        scripts = sorted(n for n in fileops.names_in(pack / member / "script")
                         if n.endswith("scriptForPI.py"))
        script = pack / member / "script" / (scripts[0] if scripts else "scriptForPI.py")
        where = f"{member}/script/{script.name}"
        head = _head(script, piscript.MAX_BYTES + 1) if script.is_file() else None
        bad = piscript.content_problem(head) if head else ""
        if bad and len(head) <= piscript.MAX_BYTES:
            out.append(Finding(Level.ERROR, "script.piscript_content", where,
                               f"not a scriptForPI: {bad}"))
        elif head:  # empty: a rehearsal's placeholder. Its name is a scriptForPI's (found so):
            version = piscript.version(head)  # the master copy says so in its $Id line
            if version:
                out.append(Finding(Level.INFO, "script.piscript_version", where,
                                   f"scriptForPI version {version}"))
            elif b"scriptForPI" not in head:
                out.append(Finding(Level.WARN, "script.piscript_identity", where,
                                   "no '$Id: scriptForPI.py' line: is it the master copy of "
                                   "scriptForPI?"))
        out += member_names.findings(pack, member)
    return out



def _outside_tree(pack: Path, members: list[str]) -> list[Finding]:
    """PACKPATH holds exactly the OUS chain and the manifest (docs/contract.md): anything else,
    listed in the manifest or not, file or (empty) directory, is not part of the delivery, and
    a tar of the package would leave it out while its manifest names it."""
    chain = {"/".join(m.split("/")[:depth]) for m in members for depth in (1, 2, 3)}
    out = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(pack / rel if rel else pack) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for child in children:
            name = f"{rel}/{child.name}" if rel else child.name
            if name in chain:
                if name.count("/") < 2:
                    stack.append(name)
            elif name != manifest.NAME or child.is_symlink() or not child.is_file(
                    follow_symlinks=False):
                what = "directory" if child.is_dir(follow_symlinks=False) else "file"
                out.append(Finding(Level.ERROR, "structure.outside", name + ("/" if what ==
                                   "directory" else ""), f"{what} outside the OUS tree "
                                   "(sg/group/member): a package holds nothing else but the "
                                   "manifest; remove it"))
    return out


def _placeholders(pack: Path, members: list[str], for_ingestion: bool) -> list[Finding]:
    """A rehearsal's empty placeholders, found in the bytes: with its journal deleted and a
    manifest written by hand, a fake package is still a fake (qa2core.checks.content)."""
    out = []
    for member in members:
        found = content.placeholders(str(pack / member))
        if found:
            out.append(Finding(Level.ERROR if for_ingestion else Level.WARN, "package.fake",
                               f"{member}/{found[0]}", f"{FAKE}: empty placeholder(s) where a "
                               f"delivery has content ({', '.join(found[:3])}"
                               f"{', ...' if len(found) > 3 else ''})"))
    return out


def _interrupted(pack: Path) -> list[Finding]:
    """A run killed during its swap leaves the package half old, half new until the next
    package or tar run completes it; killed before the swap, it left the package as it was."""
    partial = paths.partial_dir(pack)
    if not partial.exists():
        return []
    from qa2core.writing.build import swap_plan  # here: build imports the whole writer

    moved = not (partial / "unit").exists() or (partial / "previous").exists()
    if swap_plan(partial / "swap") is not None and moved:
        return [Finding(Level.ERROR, "package.interrupted", str(partial), "a run was killed "
                        "while swapping this package in: run qa2 package (or qa2 tar) again to "
                        "complete or undo it before trusting the package")]
    return [Finding(Level.INFO, "package.leftovers", str(partial), "leftovers of an interrupted "
                    "run (the package is as it was; the next run removes them)")]


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


def _checksums(pack: Path, on_disk: dict[str, int], level: str, jobs: int,
               read: dict[str, str]) -> list[Finding]:
    try:
        listed = manifest.read(pack)
    except Qa2Error as exc:
        return [Finding(Level.ERROR, "manifest.line", manifest.NAME, str(exc))]
    out = [Finding(Level.ERROR, "manifest.missing", p, "listed in the manifest but missing")
           for p in sorted(set(listed) - set(on_disk))]
    if level == "fast":
        sizes = {k: e.size for k, e in journal.load(pack).entries.items()}
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

    def digest(rel: str) -> str | None:
        if rel in read:  # hashed as the rules read it
            return read[rel]
        try:
            return fileops.hash_file(pack / rel, follow=False)
        except (OSError, Qa2Error):
            return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for path, got in zip(present, pool.map(digest, present), strict=True):
            if got != listed[path]:
                out.append(Finding(Level.ERROR, "manifest.checksum", path,
                                   "sha256 differs from the manifest (corrupted or changed)"))
    return out


def _purpose_from_readme(pack: Path, members: list[str]) -> Purpose:
    """A package's README carries qa2's listing; a staged tree's is the pipeline README as is."""
    for member in members:
        path = pack / member / (naming.readme_of(fileops.names_in(pack / member)) or naming.README)
        try:
            with os.fdopen(fileops.open_source(str(path), follow=False), "rb") as fh:
                if readme.LISTING_INTRO in fh.read(1 << 20):
                    return Purpose.PACKAGE
        except (OSError, Qa2Error):
            continue
    return Purpose.STAGE


def _structure(pack: Path, members: list[str], style: str, purpose: Purpose, real: bool,
               made_by: dict[str, dict[str, str]], plugins: Qa2Plugins | None,
               for_ingestion: bool, read: dict[str, str] | None = None,
               ) -> tuple[str | None, list[Finding]]:
    """Each member by the plugin that made it (the journal's record, checked: that plugin must
    be installed and claim the member), else by the one that claims it; then the core's rules
    and cross-cutting plugins. Validate hooks see ``view.verifying``."""
    plugins = plugins or get_plugin_manager()
    plugins.require_healthy()
    out: list[Finding] = []
    if purpose is Purpose.STAGE:
        out.append(Finding(Level.INFO, "verify.staged", str(pack),
                           "checked as a staged tree (written by qa2 stage, not yet packaged)"))
    strict = Level.ERROR if for_ingestion else Level.WARN
    judges: list[str] = []
    try:
        items, _ = scan(pack)  # names relative to PACKPATH, as plugins have always seen them
    except Qa2Error:
        return None, out  # links or special files: already ERRORs, no structure to read
    for member in members:
        base = pack / member
        record = made_by.get(member, {})
        member_style = style or record.get("style", "")
        mine = tuple(i for i in items if i.relpath.startswith(member + "/"))
        delivery = Delivery(pack.resolve(), mine, resolve_style(member_style),
                            PackageOptions(purpose=Purpose.VERIFY))
        name, context, problem = _judge(plugins, delivery, record.get("plugin", ""))
        if problem:
            out.append(Finding(strict if record.get("plugin") else Level.WARN, "structure.plugin",
                               member, problem))
        judges.append(name)
        files = tuple(sorted(_member_listing(base)))
        view = PackageView(files, _style_of(member_style, files), name,
                           Mode.COPY if real else Mode.FAKE, purpose,
                           _opener(base, member, read) if real else (lambda _rel: None),
                           verifying=True)
        out += [Finding(f.level, f.rule, f"{member}/{f.path}", f.message)
                for f in plugins.validate(view, name, context)]
    named = sorted(set(filter(None, judges)))
    return ",".join(named) or None, out


def _judge(plugins: Qa2Plugins, delivery: Delivery, recorded: str) -> tuple[str, Any, str]:
    """(plugin, its context, problem): the recorded plugin when it is installed and claims the
    member; without a record, the single top claim. A plugin that does not claim what it wrote
    would judge by rules that do not fit: only the core's rules run, and that is said."""
    ranked = plugins.claims(delivery)
    if recorded:
        if recorded not in plugins.names():
            return "", None, (f"made by plugin {recorded!r}, which is not installed here: its "
                              "rules did not run (install it, or verify where it is)")
        mine = next((r for r in ranked if r.plugin == recorded), None)
        if mine is None:
            return "", None, (f"made by plugin {recorded!r}, which does not recognise it now: "
                              "its rules did not run")
        return mine.plugin, mine.claim.context, ""
    top = [r for r in ranked if r.claim.score == ranked[0].claim.score] if ranked else []
    if len(top) != 1:
        return "", None, "no single plugin recognises this member; only the core's rules ran"
    return top[0].plugin, top[0].claim.context, ""


def _opener(base: Path, member: str, read: dict[str, str] | None):
    def open_packaged(rel: str) -> BinaryIO | None:
        try:
            fd = fileops.open_source(str(base / rel), follow=False)
        except (OSError, Qa2Error):
            return None
        key = f"{member}/{rel}"
        if read is None or key in read:
            return os.fdopen(fd, "rb")
        return io.BufferedReader(_Tee(fd, key, read), fileops.CHUNK)
    return open_packaged


class _Tee(io.RawIOBase):
    """A packaged file as a rule reads it, hashed on the way. Closed before its end, it reads
    on to the end (the checksum pass would have to), then records the digest in ``read``: the
    rule's read and the checksum's read are one."""

    def __init__(self, fd: int, key: str, read: dict[str, str]) -> None:
        super().__init__()
        self.fd, self.key, self.read_ = fd, key, read
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = os.readv(self.fd, [buffer])
        self.sha.update(memoryview(buffer)[:n])
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                while data := os.read(self.fd, fileops.CHUNK):
                    self.sha.update(data)
                self.read_[self.key] = self.sha.hexdigest()
            except OSError:
                pass  # the checksum pass reads it again and says what is wrong
            finally:
                os.close(self.fd)
        super().close()


def _style_of(style: str, files: tuple[str, ...]) -> Style:
    """The style given, or the one the package shows: calibrated/ means Cycle 0 (noms off); a
    README named after the member, Cycle >= 5 (pipeline when a pipeline script is there)."""
    if style:
        return resolve_style(style)
    if any(f.startswith("calibrated/") for f in files):
        return resolve_style("cycle0-nopipe")
    if member_names.modern(files):
        pipe = any(f.startswith("script/") and f.endswith(("casa_pipescript.py", "pipeline_manifest.xml"))
                   for f in files)
        return resolve_style("cycle5-pipe" if pipe else "cycle5-nopipe")
    return resolve_style("")


def _member_listing(base: Path) -> list[str]:
    """Member-relative names as the planner lists them: a casacore table shipped whole is one
    ``name/`` entry, and an empty subdirectory is ``sub/``."""
    names = []
    cut = len(str(base)) + 1
    for dirpath, dirnames, filenames in os.walk(base):
        prefix = dirpath[cut:] + "/" if len(dirpath) > len(str(base)) else ""
        if prefix and "table.dat" in filenames:
            names.append(prefix)
            dirnames.clear()
            continue
        names += [prefix + f for f in filenames]
        if not filenames and not dirnames and prefix:
            names.append(prefix)  # an empty member subdirectory still exists
    return names
