"""Property tests (issue 18): manual reduction trees drawn from docs/domain.md's layouts
(tests/strategies.py) through ``package``, ``verify``, ``make_tars``, the CLI, the CASA-session
API and a one-job batch.

Deterministic and bounded for ``make test``: ``derandomize=True``, no example database, a few
hundred examples in all (``QA2_PROPERTY_SCALE=10`` multiplies them, for a longer hunt). Each
example writes its trees below its own temporary directory. Known open bugs are kept as explicit
``xfail(strict=True)`` regressions at the end, each with the minimal tree that shows it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis "
                                 "(pip install 'qa2core[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import strategies as S  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

# No example database and no failure patches in the work tree: a private scratch home.
_HOME = tempfile.mkdtemp(prefix="qa2-hypothesis-")
atexit.register(shutil.rmtree, _HOME, True)
set_hypothesis_home_dir(_HOME)

from qa2core import engine  # noqa: E402
from qa2core.errors import Qa2Error  # noqa: E402
from qa2core.hooks.manager import get_plugin_manager  # noqa: E402
from qa2core.testing import SerialExecutorPlugin, tree_state  # noqa: E402
from qa2core.writing import manifest  # noqa: E402

pytest.importorskip("qa2_interferometric", reason="the properties package interferometric trees")
pytest.importorskip("qa2_totalpower", reason="the append properties use Total Power trees")

SCALE = int(os.environ.get("QA2_PROPERTY_SCALE", "1"))
PISCRIPT = b"# $Id: scriptForPI.py,v 1.23 2017/10/17 dpetry Exp $\nprint('PI')\n"
HEADER = (b"Atacama Large Millimeter/submillimeter Array (ALMA)\n#####\nCycle: 3\n"
          b"Project code: 2015.1.00123.S\nComments from Reducer: none\n#####\n")
QA2 = [str(Path(sys.executable).with_name("qa2")) if Path(sys.executable).with_name("qa2").exists()
       else shutil.which("qa2") or "qa2"]
PLUGINS = get_plugin_manager()


def bounded(n: int) -> settings:
    """``n`` examples (times QA2_PROPERTY_SCALE), the same ones on every run, no database."""
    return settings(max_examples=n * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ------------------------------------------------------------------------------------ helpers


class Work:
    """One example's directory: the reduction, the master scriptForPI, the README header, and a
    parent directory per run for its PACKPATH (named after the project code)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.piscript = base / "master" / "scriptForPI.py"
        self.piscript.parent.mkdir()
        self.piscript.write_bytes(PISCRIPT)
        self.header = base / "README.header.txt"
        self.header.write_bytes(HEADER)

    def pack(self, run: str) -> Path:
        (self.base / run).mkdir(exist_ok=True)
        return self.base / run / S.PROJECT

    def normal(self, lines, run: str = "") -> list[str]:
        """Error lines with this example's paths replaced, so two runs compare."""
        out = []
        for line in lines:
            if run:
                line = line.replace(str(self.base / run), "<OUT>")
            out.append(line.replace(str(self.base), "<TMP>"))
        return out


# Each build ends with syncfs (qa2core.writing.fileops): on a tmpfs that costs nothing, on a shared disk
# it waits for everyone's writes. The source and its packages share one directory (hard links).
SCRATCH = os.environ.get("QA2_PROPERTY_TMP") or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)


@contextmanager
def work():
    with tempfile.TemporaryDirectory(prefix="qa2-prop-", dir=SCRATCH) as tmp:
        yield Work(Path(tmp))


def package(w: Work, root: Path, run: str, mode: str, style: str, **kw):
    """``("ok", report)`` or ``(exit status, error lines modulo paths)``."""
    try:
        return "ok", engine.package(root, w.pack(run), mode=mode, style=style, piscript=w.piscript,
                                    readme_path=w.header, plugins=PLUGINS, **kw)
    except Qa2Error as exc:
        return exc.exit_code, w.normal(exc.lines, run)


def content(pack: Path) -> dict[str, tuple]:
    """relpath -> (type, size, sha256 / link target): the bytes, not the times."""
    return {rel: (v[0], v[2], v[4]) if v[0] == "f" else v[:1] + v[2:]
            for rel, v in tree_state(pack).items()}


def source_files(root: Path) -> set[str]:
    """What a scan sees: files and links, hidden names and their contents left aside."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if not name.startswith("."):
                out.add(Path(dirpath, name).relative_to(root).as_posix())
    return out


def covers(item: str, path: str) -> bool:
    return path == item or path.startswith(item + "/")


def sha256sum_ok(pack: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sha256sum", "--strict", "-c", "--quiet", manifest.NAME], cwd=pack,
                          capture_output=True, text=True, check=False)


def verify_errors(pack: Path) -> list[str]:
    from qa2core.checks.verify import verify

    report = verify(pack, plugins=PLUGINS)
    return [f"{f.path}: {f.message} [{f.rule}]" for f in report.findings if str(f.level) == "ERROR"]


# ------------------------------------------------------------------------------- properties


@bounded(60)
@given(S.reductions(invalid=True))
def test_fake_copy_and_hard_refuse_alike(red):
    """Fake is the rehearsal: the same exit status and ERROR lines as copy (and hard); a refused
    run writes no PACKPATH; no run changes the source."""
    with work() as w:
        root = red.write(w.base / "red")
        before = tree_state(root)
        fake = package(w, root, "fake", "fake", red.style)
        copy = package(w, root, "copy", "copy", red.style)
        hard = package(w, root, "hard", "hard", red.style)
        assert tree_state(root) == before, red.describe()
        for run, result in (("fake", fake), ("copy", copy), ("hard", hard)):
            if result[0] != "ok":  # refused: nothing was written
                assert not w.pack(run).exists(), f"{run}: {result}\n{red.describe()}"
        status = [r[0] for r in (fake, copy, hard)]
        assert status[0] == status[1] == status[2], red.describe()
        if fake[0] != "ok":
            assert fake[1] == copy[1] == hard[1], red.describe()
        if not red.valid:
            assert fake[0] == 1, f"{red.kind} was not refused\n{red.describe()}"


@bounded(50)
@given(S.reductions())
def test_a_valid_reduction_packages_verifies_and_leaves_the_source_alone(red):
    """copy then verify passes; ``sha256sum -c`` passes; hard is byte-for-byte copy; the source
    is unchanged by fake, copy and hard."""
    with work() as w:
        root = red.write(w.base / "red")
        before = tree_state(root)
        for mode in ("fake", "copy", "hard"):
            status, detail = package(w, root, mode, mode, red.style)
            assert status == "ok", f"{mode}: {detail}\n{red.describe()}"
        assert tree_state(root) == before, red.describe()
        copy, hard = w.pack("copy"), w.pack("hard")
        assert verify_errors(copy) == [], red.describe()
        assert verify_errors(hard) == [], red.describe()
        checked = sha256sum_ok(copy)
        assert checked.returncode == 0, f"{checked.stdout}{checked.stderr}\n{red.describe()}"
        copied, linked = tree_state(copy), tree_state(hard)  # type, mode, size, mtime, sha256
        assert copied.keys() == linked.keys(), red.describe()
        differ = {rel: (copied[rel], linked[rel]) for rel in copied if copied[rel] != linked[rel]}
        assert differ == {}, red.describe()


@bounded(50)
@given(S.reductions(invalid=False))
def test_every_source_file_is_packaged_or_left_out_with_a_reason(red):
    with work() as w:
        root = red.write(w.base / "red")
        status, report = package(w, root, "copy", "copy", red.style)
        assert status == "ok", f"{report}\n{red.describe()}"
        top = f"{root.resolve()}/"
        packaged = {s.removeprefix(top) for f in report.files for s in f.sources if s.startswith(top)}
        skipped = {rel for rel, _reason in report.skipped}
        assert all(reason.strip() for _rel, reason in report.skipped)
        unclassified = set(report.unclassified)
        assert not (packaged & skipped) and not (packaged & unclassified) \
            and not (skipped & unclassified), red.describe()
        items = packaged | skipped | unclassified
        lost = sorted(p for p in source_files(root) if not any(covers(i, p) for i in items))
        assert lost == [], red.describe()
        left = {rel for _reason, rels in report.left_out() for rel in rels}
        assert left == skipped | unclassified
        journal = json.loads((w.base / "copy" / f"{S.PROJECT}.qa2" / "journal.json").read_text())
        assert {rel for rel, _reason in journal["left_out"]} == skipped | unclassified


@bounded(30)
@given(st.one_of(S.appends("interferometric"), S.appends("totalpower")))
def test_appends_verify(pair):
    """A 12m package with a second 12m reduction, or a Total Power one (the mixed-plugin case),
    appended as a member or a group: it verifies, and sha256sum accepts its manifest."""
    first, second, append = pair
    with work() as w:
        a, b = first.write(w.base / "a"), second.write(w.base / "b")
        assert package(w, a, "p", "copy", first.style)[0] == "ok", first.describe()
        status, detail = package(w, b, "p", "copy", second.style, append=append)
        assert status == "ok", f"{detail}\n{second.describe()}"
        assert verify_errors(w.pack("p")) == [], f"{first.describe()}\n{second.describe()}"
        assert sha256sum_ok(w.pack("p")).returncode == 0


@bounded(10)
@given(S.tp_reductions().flatmap(lambda tp: st.tuples(
    st.just(tp), S.tp_reductions(exclude=frozenset(tp.ebs)), st.sampled_from(["member", "group"]))))
def test_total_power_appends_verify(pair):
    first, second, append = pair
    with work() as w:
        a, b = first.write(w.base / "a"), second.write(w.base / "b")
        assert package(w, a, "p", "copy", first.style)[0] == "ok", first.describe()
        status, detail = package(w, b, "p", "copy", second.style, append=append)
        assert status == "ok", f"{detail}\n{second.describe()}"
        assert verify_errors(w.pack("p")) == []


@bounded(20)
@given(S.reductions())
def test_tars_hold_exactly_the_manifest(red):
    """make_tars of a copy package: every manifest file once, under the project code."""
    import tarfile

    from qa2core.writing.archive import make_tars

    with work() as w:
        root = red.write(w.base / "red")
        assert package(w, root, "copy", "copy", red.style)[0] == "ok", red.describe()
        pack = w.pack("copy")
        out = w.base / "tars"
        out.mkdir()
        tars = make_tars(pack, out_dir=out, plugins=PLUGINS)
        names = []
        for path in tars.tars:
            with tarfile.open(path) as tf:
                names += [m.name for m in tf.getmembers() if m.isfile()]
        listed = set(manifest.read(pack)) if hasattr(manifest, "read") else None
        on_disk = {p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file()}
        expected = {f"{S.PROJECT}/{rel}" for rel in (listed or on_disk)}
        assert len(names) == len(set(names)), red.describe()
        assert set(names) >= expected - {f"{S.PROJECT}/{manifest.NAME}"}, red.describe()


def _cli(w: Work, root: Path, run: str, style: str) -> subprocess.CompletedProcess:
    return subprocess.run([*QA2, "package", str(root), str(w.pack(run)), "--mode", "copy",
                           "--style", style, "--piscript", str(w.piscript), "--readme",
                           str(w.header), "--json"], capture_output=True, text=True, check=False)


def _batch(w: Work, root: Path, run: str, style: str):
    from qa2core.batch.run import run_campaign

    pm = get_plugin_manager(entrypoints=False)
    pm.register(SerialExecutorPlugin(), name="serial-site")
    jobs = w.base / "jobs.toml"
    jobs.write_text(f"""
[[job]]
command = "package"
mode = "copy"
style = {json.dumps(style)}
origpath = {json.dumps(str(root))}
packpath = {json.dumps(str(w.pack(run)))}
readme = {json.dumps(str(w.header))}
piscript = {json.dumps(str(w.piscript))}
""")
    return run_campaign(jobs, executor="serial", plugins=pm)


@bounded(4)
@given(S.reductions(invalid=True))
def test_cli_api_and_batch_make_the_same_package(red):
    """``qa2 package`` (a process), ``QA_Packager`` and a one-job ``qa2 batch``: one package."""
    from QA2_Packaging_module import QA_Packager

    with work() as w:
        root = red.write(w.base / "red")
        style = red.style
        cli = _cli(w, root, "cli", style)
        try:
            QA_Packager(str(root), readme=str(w.header), packpath=str(w.pack("api")),
                        PIscript=str(w.piscript), style=style, mode="copy", verbose=False)
            api, api_lines = 0, []
        except Qa2Error as exc:
            api, api_lines = exc.exit_code, w.normal(exc.lines, "api")
        assert cli.returncode == api, f"{cli.stderr}\n{red.describe()}"
        batch = _batch(w, root, "batch", style)
        assert [o.status for o in batch.outcomes] == (["succeeded"] if api == 0 else ["failed"])
        if api == 0:
            assert content(w.pack("cli")) == content(w.pack("api")) == content(w.pack("batch")), \
                red.describe()
        else:
            errors = [line.removeprefix("qa2: error: ") for line in cli.stderr.splitlines()
                      if line.startswith("qa2: error: ")]
            assert w.normal(errors, "cli") == api_lines, red.describe()
            assert not w.pack("api").exists() and not w.pack("batch").exists()


# ---------------------------------------------------------------- known bugs, kept as regressions

EB = "uid___A002_Xb8e115_X1e3b"
MINIMAL = {f"{EB}.ms.scriptForCalibration.py": b"# calibration\n", "scriptForImaging.py": b"# imaging\n"}


def test_regression_internal_file_link_is_left_out_once():
    """Was a known bug ([plan.clash] for a file link inside ORIGPATH to another file of it); now
    docs/contract.md: where a link and its target land on one destination, the file ships once
    and the link is left out with its reason."""
    script = f"{EB}.ms.scriptForCalibration.py"
    red = S.Reduction(MINIMAL, "cycle3-nopipe", (EB,),
                      links={f"Calibration_X1e3b/{script}": f"../{script}"})
    with work() as w:
        root = red.write(w.base / "red")
        status, report = package(w, root, "copy", "copy", red.style)
        assert status == "ok", report
        assert [f.dest for f in report.files if f.dest.endswith(script)] == [f"script/{script}"]
        assert dict(report.skipped)[f"Calibration_X1e3b/{script}"].startswith(f"a link to {script}")


def test_regression_internal_directory_link_packages_once():
    """Was a bug: a directory link inside ORIGPATH (Cal2 -> Calibration_X1e3b) gave [plan.clash]
    for every file below it; a file reached again through it is that file."""
    script = f"{EB}.ms.scriptForCalibration.py"
    red = S.Reduction({f"Calibration_X1e3b/{script}": b"# calibration\n",
                       "scriptForImaging.py": b"# imaging\n"}, "cycle3-nopipe", (EB,),
                      links={"Cal2": "Calibration_X1e3b"})
    with work() as w:
        root = red.write(w.base / "red")
        status, report = package(w, root, "copy", "copy", red.style)
        assert status == "ok", report
        assert [f.dest for f in report.files if f.dest.endswith(script)] == [f"script/{script}"]


def test_regression_upper_case_fits_product_is_packaged():
    """Was a known bug: X.image.pbcor.FITS was left out as not recognised."""
    red = S.Reduction({**MINIMAL, "M100.image.pbcor.FITS": S.fits_bytes("pbcor", (8, 8))},
                      "cycle3-nopipe", (EB,))
    with work() as w:
        root = red.write(w.base / "red")
        status, report = package(w, root, "copy", "copy", red.style)
        assert status == "ok", report
        assert "M100.image.pbcor.FITS" not in report.unclassified
        assert any(f.dest.startswith("product/M100") for f in report.files)


@pytest.mark.parametrize("append", ["member", "group"])
def test_regression_mixed_plugin_append_verifies(append):
    """Was a known bug (verify judged every member by one plugin: 12m + appended TP failed)."""
    tp_eb = "uid___A002_Xc4f3ae_X57a5"
    tp = S.Reduction({f"{tp_eb}.ms.scriptForSDCalibration.py": b"# sd\n",
                      "scriptForSDimaging.py": b"# sd imaging\n"}, "cycle3-nopipe", (tp_eb,))
    with work() as w:
        a = S.Reduction(MINIMAL, "cycle3-nopipe", (EB,)).write(w.base / "a")
        b = tp.write(w.base / "b")
        assert package(w, a, "p", "copy", "cycle3-nopipe")[0] == "ok"
        status, detail = package(w, b, "p", "copy", "cycle3-nopipe", append=append)
        assert status == "ok", detail
        assert verify_errors(w.pack("p")) == []


@pytest.mark.parametrize("fits, image", [("NGC5921.image.pbcor.FITS", "NGC5921.image"),
                                         ("NGC5921.pb.FITS", "NGC5921.pb"),
                                         ("NGC5921.mask.FITS", "NGC5921.mask")])
def test_regression_upper_case_fits_twin_of_a_casa_image(fits, image):
    """Was a bug: twin/superseded/compression_for compared names case-sensitively, so X.image
    was exported beside X.image.pbcor.FITS (two products, or two primary beams)."""
    files = {**MINIMAL, "NGC5921.image.pbcor.fits": S.fits_bytes("pbcor", (8, 8)),
             "NGC5921.pb.fits": S.fits_bytes("pb", (8, 8))}
    files.pop(fits.replace(".FITS", ".fits"), None)
    files[fits] = S.fits_bytes(fits.split(".")[-2].replace("image", "pbcor"), (8, 8))
    red = S.Reduction({**files, **S.table(image, "Image")}, "cycle3-nopipe", (EB,))
    with work() as w:
        root = red.write(w.base / "red")
        status, report = package(w, root, "plan", "copy", red.style, dry_run=True)
        assert status == "ok", report
        assert [f.dest for f in report.files if f.action == "export"] == []
        assert image in dict(report.skipped)


def test_strategies_draw_valid_and_invalid_trees():
    """The generator itself: valid trees hold a calibration script per EB; breakers are reached."""
    kinds = set()

    @bounded(60)
    @given(S.reductions(invalid=True))
    def look(red):
        kinds.add(red.kind)
        if red.valid:
            assert all(any(k.endswith(f"{eb}.ms.scriptForCalibration.py") for k in red.files)
                       for eb in red.ebs)

    look()
    assert "valid" in kinds and len(kinds) >= 4, kinds

