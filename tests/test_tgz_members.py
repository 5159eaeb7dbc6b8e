"""Every archive a PI unpacks is checked like the weblog (issue 17, items 8 and 9).

qa2core.checks.tgzcheck on real gzip tars written with tarfile (and, for what tarfile will not write, a
header block patched by hand): no ``..``, no absolute names, no links out, no devices or FIFOs,
and headers bounded, so that a 1.8 MB ``.tgz`` whose pax or GNU long-name header claims 400 MB
costs no more memory than any other. Then the core's rule (``archive.unsafe`` /
``archive.unreadable``) on a view, and ``qa2 stage`` / ``qa2 verify`` on a pipeline run whose
auxproducts.tgz holds ``../../../../tmp/x`` and whose caltables.tgz links to /etc.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from qa2core import Mode, PackageView, Purpose
from qa2core.checks import tgzcheck
from qa2core.hooks import builtin
from qa2core.planning.styles import resolve_style
from qa2core.testing import sampledata, tree_state

BLOCK = tarfile.BLOCKSIZE
BOMB = 400 * 2**20  # what the bomb's header claims, and holds (zeros: ~0.4 MB gzipped)
LIMIT_KB = 200 * 1024
QA2 = Path(sys.executable).with_name("qa2")


# ---------------------------------------------------------------------------- archives


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "", data: bytes = b"",
            ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mtime = kind, target, len(data), 1485268000
    return info, data


def tgz(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A gzip tar written by tarfile, as the pipeline writes its products."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _block(info: tarfile.TarInfo, fmt: int = tarfile.USTAR_FORMAT, **patch: int) -> bytes:
    """One header block of ``info``; ``patch`` sets bytes at offsets (``b482=1``), checksum
    recomputed: how a hand-made header looks to tar."""
    buf = bytearray(info.tobuf(format=fmt)[:BLOCK])
    for where, value in patch.items():
        buf[int(where[1:])] = value
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def _regular(name: str, data: bytes = b"") -> bytes:
    info, _ = _member(name, data=data)
    return _block(info) + data + bytes(-len(data) % BLOCK)


def raw_tgz(path: Path, *chunks: bytes | int) -> Path:
    """A gzip stream of ``chunks`` (an int: that many zero bytes, written 1 MiB at a time)."""
    from isal import igzip

    with igzip.open(path, "wb", compresslevel=1) as gz:
        for chunk in chunks:
            if isinstance(chunk, int):
                for start in range(0, chunk, 2**20):
                    gz.write(bytes(min(2**20, chunk - start)))
            else:
                gz.write(chunk)
    return path


def header_bomb(path: Path, kind: bytes, size: int = BOMB) -> Path:
    """A pax / GNU long-name / long-link header declaring ``size`` bytes and holding them
    (zeros), then a normal page and the end-of-archive blocks."""
    name = "././@PaxHeader" if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE) else "././@LongLink"
    info, _ = _member(name, kind)
    info.size = size
    fmt = tarfile.GNU_FORMAT if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
        else tarfile.USTAR_FORMAT
    return raw_tgz(path, _block(info, fmt), size + (-size % BLOCK),
                   _regular("pipeline-1/html/index.html", b"<html/>"), bytes(2 * BLOCK))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bombs")
    return {"pax": header_bomb(base / "pax.weblog.tgz", tarfile.XHDTYPE),
            "gnu": header_bomb(base / "gnu.caltables.tgz", tarfile.GNUTYPE_LONGNAME)}


def scan(path: Path) -> tgzcheck.TgzReport:
    with open(path, "rb") as fh:
        return tgzcheck.scan(fh)


# ---------------------------------------------------------------------------- members


UNSAFE = [
    pytest.param(_member("../../../../tmp/x", data=b"x"), "'..'", id="dotdot"),
    pytest.param(_member("pipeline-1/../../x", data=b"x"), "'..'", id="dotdot-inside"),
    pytest.param(_member("/etc/cron.d/x", data=b"x"), "absolute", id="absolute"),
    pytest.param(_member("etc", tarfile.SYMTYPE, "/etc"), "outside the archive", id="symlink-etc"),
    pytest.param(_member("a/up", tarfile.SYMTYPE, "../../etc"), "outside the archive", id="symlink-up"),
    pytest.param(_member("a/b/c", tarfile.SYMTYPE, "../d"), "through another link", id="symlink-dotdot"),
    pytest.param(_member("passwd", tarfile.LNKTYPE, "/etc/passwd"), "hard link", id="hardlink-abs"),
    pytest.param(_member("shadow", tarfile.LNKTYPE, "../../etc/shadow"), "hard link", id="hardlink-up"),
    pytest.param(_member("tty", tarfile.CHRTYPE), "device", id="chardev"),
    pytest.param(_member("sda", tarfile.BLKTYPE), "device", id="blockdev"),
    pytest.param(_member("pipe", tarfile.FIFOTYPE), "FIFO", id="fifo"),
]


@pytest.mark.parametrize(("member", "why"), UNSAFE)
def test_unsafe_members_are_named_with_their_reason(tmp_path, member, why):
    page = _member("pipeline-1/html/index.html", data=b"<html/>")
    report = scan(tgz(tmp_path / "x.tgz", page, member, page))
    assert not report.ok and report.error == "" and report.members == 3
    assert report.unsafe_count == 1 and report.unsafe[0].name == member[0].name
    assert why in report.unsafe[0].reason


def test_links_that_stay_inside_and_plain_members_are_fine(tmp_path):
    report = scan(tgz(
        tmp_path / "ok.tgz", _member("t/table.dat", data=b"casacore"), _member("t", tarfile.DIRTYPE),
        _member("t/latest", tarfile.SYMTYPE, "table.dat"),
        _member("t/sub/here", tarfile.SYMTYPE, "."),
        _member("t/again", tarfile.LNKTYPE, "t/table.dat"),
        _member("./t/dot", data=b"."), _member("x" * 300 + "/long", data=b"pax path")))
    assert report == tgzcheck.TgzReport(members=7)
    assert report.ok


def test_many_unsafe_members_keep_a_few_names_and_count_all(tmp_path):
    evil = [_member(f"../x{i}", data=b"") for i in range(500)]
    report = scan(tgz(tmp_path / "many.tgz", *evil))
    assert report.unsafe_count == 500 and len(report.unsafe) == tgzcheck.KEPT
    assert str(report.unsafe[0]) == "../x0 (a path climbing out with '..')"


def test_visit_sees_every_member_with_its_verdict(tmp_path):
    seen = []
    path = tgz(tmp_path / "v.tgz", _member("a"), _member("/b"), _member("c"))
    with open(path, "rb") as fh:
        tgzcheck.scan(fh, lambda info, why: seen.append((info.name, bool(why))))
    assert seen == [("a", False), ("/b", True), ("c", False)]
    with open(path, "rb") as fh, pytest.raises(ZeroDivisionError):  # a visitor's bug is no
        tgzcheck.scan(fh, lambda info, why: 1 / 0)                  # "unreadable archive"


# ---------------------------------------------------------------------------- unreadable


def test_unreadable_archives_say_why(tmp_path):
    good = tgz(tmp_path / "good.tgz", _member("a", data=b"a" * 5000)).read_bytes()
    cases = {
        "plain.tgz": b"not a gzip file at all",
        "empty.tgz": b"",
        "garbage.tgz": b"\x1f\x8b\x08\x00garbage" * 50,
        "truncated.tgz": good[: len(good) // 2],
        "crc.tgz": good[:-8] + bytes(8),  # gzip trailer (CRC, size) broken: read to the end
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        report = scan(tmp_path / name)
        assert report.error and not report.ok, name
        assert "\n" not in report.error


def test_a_damaged_header_mid_archive_is_not_the_end(tmp_path):
    """tarfile would stop at the bad block without a word; GNU tar skips it and unpacks the
    member behind it, which nobody checked."""
    path = raw_tgz(tmp_path / "damaged.tgz", _regular("pipeline-1/html/index.html", b"<html/>"),
                   b"X" * BLOCK, _regular("../../../../tmp/x", b"x"), bytes(2 * BLOCK))
    report = scan(path)
    assert report.members == 1 and "damaged header at byte 1024" in report.error


def test_data_after_the_end_of_archive_marker_is_an_error(tmp_path):
    path = raw_tgz(tmp_path / "trailing.tgz", _regular("a", b"a"), bytes(2 * BLOCK),
                   _regular("../../../../tmp/x", b"x"), bytes(2 * BLOCK))
    assert "after the end-of-archive marker" in scan(path).error
    padded = raw_tgz(tmp_path / "padded.tgz", _regular("a", b"a"), bytes(20 * BLOCK))
    assert scan(padded).ok  # record padding (zeros) is normal


# ---------------------------------------------------------------------------- bounded headers


def test_header_bombs_are_refused_before_their_payload_is_read(bombs):
    for kind, path in bombs.items():
        assert path.stat().st_size < 4 * 2**20, kind
        report = scan(path)
        assert report.unsafe_count == 1 and report.members == 0 and not report.error, kind
        assert "declaring 419,430,400 bytes, over the 1 MiB bound" in report.unsafe[0].reason


def test_every_extension_header_kind_is_bounded(tmp_path):
    for kind in (tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGLINK):
        path = header_bomb(tmp_path / "b.tgz", kind, size=tgzcheck.HEADER_LIMIT + 1)
        assert "over the 1 MiB bound" in scan(path).unsafe[0].reason, kind
    at_limit = header_bomb(tmp_path / "limit.tgz", tarfile.GNUTYPE_LONGNAME,
                           size=tgzcheck.HEADER_LIMIT)
    assert scan(at_limit).unsafe == ()  # the bound itself is allowed (a name of zeros: "")


def _pax(headers: dict[str, str], kind: bytes = tarfile.XHDTYPE) -> bytes:
    return tarfile.TarInfo._create_pax_generic_header(headers, kind, "utf-8")


def test_a_chain_of_small_headers_is_bounded(tmp_path):
    chain = raw_tgz(tmp_path / "chain.tgz", *[_pax({"comment": "x"})] * 50, _regular("a"),
                    bytes(2 * BLOCK))
    assert "extension headers in a row" in scan(chain).unsafe[0].reason
    real = raw_tgz(tmp_path / "real.tgz", _pax({"comment": "global"}, tarfile.XGLTYPE),
                   _pax({"path": "p" * 5000}), _regular("short"), bytes(2 * BLOCK))
    assert scan(real) == tgzcheck.TgzReport(members=1)


def test_global_headers_are_bounded_over_the_whole_archive(tmp_path):
    """They stay in memory for every later member: 3 x 600 KB, each under the bound."""
    parts = []
    for i in range(3):
        parts += [_pax({f"k{i}": "v" * 600_000}, tarfile.XGLTYPE), _regular(f"m{i}")]
    path = raw_tgz(tmp_path / "globals.tgz", *parts, bytes(2 * BLOCK))
    report = scan(path)
    assert report.members == 1 and "pax global headers of" in report.unsafe[0].reason


def test_sparse_maps_are_bounded(tmp_path):
    """Old GNU sparse extension blocks and a GNU 1.0 sparse map both grow a list in tarfile
    as long as the archive feeds them."""
    info, _ = _member("sparse", tarfile.GNUTYPE_SPARSE)
    info.size = 0
    ext = bytearray(BLOCK)
    for i in range(21):
        ext[i * 24:i * 24 + 24] = b"%011o\0%011o\0" % (i + 1, 1)
    ext[504] = 1  # another extension block follows, and another ...
    old = raw_tgz(tmp_path / "old.tgz", _block(info, tarfile.GNU_FORMAT, b482=1),
                  bytes(ext) * 20_000, bytes(2 * BLOCK))
    assert "headers of one member larger than 4 MiB" in scan(old).unsafe[0].reason
    pax = _pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s",
                "GNU.sparse.realsize": "1"})
    new = raw_tgz(tmp_path / "new.tgz", pax, _block(_member("s", data=b"")[0]),
                  b"100000000\n" + b"1\n" * 5_000_000, bytes(2 * BLOCK))
    assert "headers of one member larger than 4 MiB" in scan(new).unsafe[0].reason


# Measured from a small wrapper process: a child forked straight from pytest would inherit
# pytest's own peak (Linux keeps the high-water mark across exec).
_WRAPPER = ("import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
            "_, status, usage = os.wait4(pid, 0); print(usage.ru_maxrss, file=sys.stderr); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def peak_rss_kb(*argv: object) -> tuple[int, int, str, str]:
    """(exit code, peak RSS in KiB, stdout, the rest of stderr) of ``argv``."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, argv)],
                          capture_output=True, text=True)
    *lines, peak = done.stderr.strip().splitlines() or ["0"]
    return done.returncode, int(peak), done.stdout, "\n".join(lines)


_SCAN = ("import sys; from qa2core import tgzcheck; r = tgzcheck.scan(open(sys.argv[1], 'rb')); "
         "print(r.unsafe_count, r.members)")
_STOCK = ("import sys, tarfile; t = tarfile.open(sys.argv[1], 'r|gz'); print(len(list(t)))")


@pytest.mark.parametrize("kind", ["pax", "gnu"])
def test_a_header_bomb_costs_under_200mb(bombs, kind):
    code, peak, out, err = peak_rss_kb(sys.executable, "-c", _SCAN, bombs[kind])
    assert code == 0 and out.split() == ["1", "0"], err
    assert peak < LIMIT_KB, f"scan peaked at {peak // 1024} MB"
    # the bomb is real: plain tarfile holds the whole header (Python 3.10-3.13)
    code, stock, _, err = peak_rss_kb(sys.executable, "-c", _STOCK, bombs[kind])
    assert code == 0, err
    assert stock > BOMB // 1024, f"plain tarfile peaked at only {stock // 1024} MB"


# ---------------------------------------------------------------------------- the core's rule


def _view(files: dict[str, bytes | None]) -> PackageView:
    def open_(rel: str):
        data = files.get(rel)
        return None if data is None else io.BytesIO(data)

    return PackageView(tuple(sorted(files)), resolve_style(""), "toy", mode=Mode.COPY,
                       purpose=Purpose.PACKAGE, open=open_)


def test_the_core_checks_every_archive_once(tmp_path):
    ok = tgz(tmp_path / "ok.tgz", _member("t/table.dat", data=b"casacore")).read_bytes()
    evil = tgz(tmp_path / "evil.tgz", _member("../../../../tmp/x", data=b"x"),
               _member("/etc/x", data=b"x")).read_bytes()
    link = tgz(tmp_path / "link.tgz", _member("etc", tarfile.SYMTYPE, "/etc")).read_bytes()
    view = _view({
        "calibration/X.auxproducts.tgz": evil, "calibration/X.session_1.caltables.tgz": link,
        "calibration/E.ms.flagversions.tar.gz": ok, "product/X.mask.tgz": ok,
        "qa/X.weblog.tgz": b"\x1f\x8b\x08\x00garbage", "product/X.pb.tgz": None,  # not at hand
        "calibrated/uid.ms.tgz/": None, "log/casa.log": b"not an archive",
    })
    found = {f.path: f for f in builtin.archive_findings(view)}
    assert set(found) == {"calibration/X.auxproducts.tgz", "calibration/X.session_1.caltables.tgz",
                          "qa/X.weblog.tgz"}
    aux = found["calibration/X.auxproducts.tgz"]
    assert (aux.level.name, aux.rule) == ("ERROR", "archive.unsafe")
    assert aux.message.startswith("unsafe to unpack: ../../../../tmp/x (a path climbing out "
                                  "with '..') and 1 more;")
    assert "etc (a symbolic link to /etc, outside the archive)" in \
        found["calibration/X.session_1.caltables.tgz"].message
    assert found["qa/X.weblog.tgz"].rule == "archive.unreadable"
    assert all("\n" not in f.line() for f in found.values())
    assert {f.rule for f in builtin.qa2_validate(view=view)} >= {"archive.unsafe",
                                                                 "archive.unreadable"}


# ---------------------------------------------------------------------------- end to end


@pytest.fixture
def run(tmp_path) -> tuple[sampledata.PipelineRun, Path]:
    """A 2017 pipeline run with an auxproducts.tgz, and the qa2 PI-script directory."""
    piscript = tmp_path / "qa2mirror"
    piscript.mkdir()
    (piscript / "scriptForPI.py").write_text(sampledata.pi_script_text())
    return sampledata.build_auxproducts_run(tmp_path / "run"), piscript


def _poison(calibration: Path, mous: str) -> tuple[str, str]:
    aux = f"{mous}.auxproducts.tgz"
    cal = f"{mous}.session_1.caltables.tgz"
    tgz(calibration / aux, _member("flux.csv", data=b"ms,field\n"),
        _member("../../../../tmp/x", data=b"owned\n"))
    tgz(calibration / cal, _member("uid.bcal.tbl/table.dat", data=b"casacore table"),
        _member("uid.bcal.tbl/etc", tarfile.SYMTYPE, "/etc"))
    return aux, cal


def _archive_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "[archive." in line]


def test_stage_refuses_a_run_whose_archives_leave_their_directory(run, run_qa2, tmp_path):
    source, piscript = run
    aux, cal = _poison(source.products, source.mous)
    staged = tmp_path / "staged" / source.project
    staged.parent.mkdir()
    result = run_qa2("stage", source.root, staged, "--piscript", piscript)
    assert result.exit_code == 1, result.stderr
    lines = _archive_lines(result.stderr)
    assert len(lines) == 2, result.stderr  # one line per archive
    assert any(f"calibration/{aux}: unsafe to unpack: ../../../../tmp/x" in line
               and line.startswith("qa2: error: ") and line.endswith("[archive.unsafe]")
               for line in lines), lines
    assert any(f"calibration/{cal}: unsafe to unpack: uid.bcal.tbl/etc (a symbolic link to "
               "/etc, outside the archive)" in line for line in lines), lines
    assert not staged.exists()  # refused before anything is written


def test_verify_fails_on_a_staged_tree_whose_archives_were_swapped(run, run_qa2, tmp_path):
    source, piscript = run
    staged = tmp_path / source.project
    result = run_qa2("stage", source.root, staged, "--piscript", piscript)
    assert result.exit_code == 0, result.stderr
    assert run_qa2("verify", staged).exit_code == 0
    member = staged / "sg_ouss_id/group_ouss_id/member_ouss_id"
    aux, cal = _poison(member / "calibration", source.mous)
    before = tree_state(staged)
    result = run_qa2("verify", staged)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = _archive_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert any(f"calibration/{aux}: unsafe to unpack: ../../../../tmp/x (a path climbing out "
               "with '..'); scriptForPI and the PI untar it [archive.unsafe]" in line
               for line in lines), lines
    assert any(f"calibration/{cal}: unsafe to unpack: uid.bcal.tbl/etc" in line
               and line.endswith("[archive.unsafe]") for line in lines), lines
    assert tree_state(staged) == before  # verify reads, never unpacks


def test_stage_and_verify_of_header_bombs_stay_under_200mb(run, bombs, tmp_path):
    source, piscript = run
    weblog = next(source.products.glob("*weblog.tgz"))
    clean = weblog.read_bytes()
    os.replace(bombs["pax"], weblog)  # module fixture: the file moves, so put it back after
    try:
        staged = tmp_path / "refused" / source.project
        staged.parent.mkdir()
        code, peak, _, err = peak_rss_kb(QA2, "stage", source.root, staged, "--piscript", piscript)
        assert code == 1 and f"{weblog.name}: unsafe to unpack: ././@PaxHeader at byte 0" in err
        assert "[archive.unsafe]" in err
        assert peak < LIMIT_KB, f"qa2 stage peaked at {peak // 1024} MB"
    finally:
        os.replace(weblog, bombs["pax"])
        weblog.write_bytes(clean)
    staged = tmp_path / source.project
    code, _, _, err = peak_rss_kb(QA2, "stage", source.root, staged, "--piscript", piscript)
    assert code == 0, err
    caltables = next((staged / "sg_ouss_id/group_ouss_id/member_ouss_id/calibration")
                     .glob("*.caltables.tgz"))
    os.replace(bombs["gnu"], caltables)
    try:
        code, peak, _, err = peak_rss_kb(QA2, "verify", staged)
        assert code == 1 and f"{caltables.name}: unsafe to unpack: ././@LongLink at byte 0" in err
        assert peak < LIMIT_KB, f"qa2 verify peaked at {peak // 1024} MB"
    finally:
        os.replace(caltables, bombs["gnu"])
