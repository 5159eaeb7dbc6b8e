"""The FITS value scan gives the same answer with numpy and without it.

Small images are scanned in pure Python so that verifying a package of small products imports
no numpy (issue 21); bigger ones, or any once numpy is loaded, with numpy. A primary beam or
mask must not pass on one path and fail on the other, so both are compared here over
generated pixel data: every FITS pixel type, NaN/inf blanks, BSCALE/BZERO, values at 0 and 1.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qa2core.data import images

BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@st.composite
def chunks(draw: st.DrawFn) -> tuple[int, bytes]:
    bitpix = draw(st.sampled_from(sorted(BITPIX)))
    dtype = np.dtype(BITPIX[bitpix])
    if dtype.kind == "f":
        # 0, 1 and blanks drawn often: the rule's edges
        elements = st.one_of(st.sampled_from([0.0, 1.0, -0.0, float("nan"), float("inf"),
                                              float("-inf")]),
                             st.floats(width=dtype.itemsize * 8, allow_subnormal=False))
    else:
        info = np.iinfo(dtype)
        elements = st.one_of(st.sampled_from([0, 1]), st.integers(int(info.min), int(info.max)))
    data = draw(hnp.arrays(dtype, st.integers(0, 300), elements=elements))
    tail = draw(st.binary(max_size=dtype.itemsize - 1))  # a chunk may end mid-pixel
    return bitpix, data.tobytes() + tail


@settings(max_examples=300, deadline=None, derandomize=True)
@given(chunk=chunks(),
       scaling=st.sampled_from([(1.0, 0.0), (2.0, 0.0), (1.0, -32768.0), (1e-5, 0.5)]),
       binary=st.booleans())
def test_the_pixel_statistics_agree_with_and_without_numpy(
        chunk: tuple[int, bytes], scaling: tuple[float, float], binary: bool) -> None:
    bitpix, data = chunk
    with np.errstate(over="ignore", invalid="ignore"):
        by_numpy = images._pixel_stats(data, bitpix, *scaling, numpy=True, binary=binary)
    pure = images._pixel_stats(data, bitpix, *scaling, numpy=False, binary=binary)
    assert pure == by_numpy
    if by_numpy is not None:  # and both agree with the plain definition
        dtype = np.dtype(BITPIX[bitpix])
        values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # to inf: out of the range, as in qa2
            values = values.astype(np.float64) * scaling[0] + scaling[1]
        finite = values[np.isfinite(values)]
        odd = int(np.count_nonzero((finite != 0) & (finite != 1))) if binary else 0
        assert by_numpy == (finite.min(), finite.max(), odd)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.binary(max_size=2000).map(lambda b: b[: len(b) - len(b) % 4]))
def test_the_checksum_word_sums_agree(data: bytes) -> None:
    assert images._words(data, numpy=False) == images._words(data, numpy=True)


def _fits(pixels: np.ndarray, **cards: object) -> bytes:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(pixels)
    for key, value in cards.items():
        hdu.header[key] = value
    hdu.add_checksum()
    out = io.BytesIO()
    hdu.writeto(out)
    return out.getvalue()


@pytest.mark.parametrize("numpy_first", [False, True])
def test_a_bad_primary_beam_and_checksum_are_found_on_both_paths(
        numpy_first: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    beam = np.full((1, 1, 40, 40), 0.5, dtype=">f4")
    beam[0, 0, 3, 4] = 1.7
    beam[0, 0, 0, 0] = np.nan
    raw = _fits(beam)
    monkeypatch.setattr(images, "_with_numpy", lambda nbytes: numpy_first)
    head = images.read_head(io.BytesIO(raw))
    stream = io.BytesIO(raw)
    images.read_head(stream)
    got = images.scan(stream, head)
    assert (got.low, got.high, got.complete) == (0.5, pytest.approx(1.7), True)
    assert got.not_binary == 40 * 40 - 1
    stream = io.BytesIO(raw)
    images.read_head(stream)
    assert images.checksum_state(head, stream) == "ok"
    broken = bytearray(raw)
    broken[-4] ^= 0xFF  # the last pixel's bytes
    stream = io.BytesIO(bytes(broken))
    images.read_head(stream)
    assert images.checksum_state(head, stream) == "bad: DATASUM differs (data changed)"


@pytest.fixture(scope="module")
def sample_package_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qa2core.testing.sampledata import build_manual_reduction

    base = tmp_path_factory.mktemp("scan")
    sample = build_manual_reduction(base / "reduction")
    pack = base / "pack" / sample.project
    pack.parent.mkdir()
    subprocess.run([Path(sys.executable).with_name("qa2"), "package", sample.root, pack, "--mode",
                    "copy", "--style", "cycle3-nopipe", "--readme", sample.readme_header,
                    "--piscript", sample.piscript], check=True, capture_output=True)
    return pack


def test_verifying_a_package_of_small_products_imports_no_numpy(sample_package_path: Path) -> None:
    products = [p.name for p in sample_package_path.rglob("*") if p.parent.name == "product"]
    assert any(images.role_of(n) in images.BEAMS for n in products), products
    code = ("import sys; from qa2core.cli import main; sys.argv = ['qa2', 'verify', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('numpy' in sys.modules, code)")
    out = subprocess.run([sys.executable, "-c", code, str(sample_package_path)],
                         capture_output=True, text=True, check=True).stdout.split()
    # the package's primary beams and masks were scanned (verify OK), numpy never imported
    assert out[-2:] == ["False", "0"]
