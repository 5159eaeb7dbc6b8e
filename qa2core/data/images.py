"""Images without casatools: roles from names, FITS read from streams, product rules.

FITS is read from any binary stream (a file, ``PackageView.open``, a ``.gz`` product through
gzip): the header block by block (its cards parsed here, :func:`parse_cards`: no astropy
import for a header), the data, when a rule needs values, in chunks of :data:`CHUNK` bytes, so
memory stays bounded whatever the cube's size. Only the primary HDU is read (CASA's exportfits
writes the image there). numpy is imported only when pixels are read.
"""

from __future__ import annotations

import array
import re
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

from qa2core.hooks.model import Finding, Level, PackageView

BLOCK = 2880
CHUNK = 4 << 20  # a multiple of every pixel size and of 4 (checksum words)
MAX_HEADER = 2 << 20
VALUE_CAP = 512 << 20  # PB/mask values are checked in images up to this much data
_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

# Name suffixes (after .fits/.gz/.tgz) -> role; first match wins, longest first.
_ROLES = (
    (r"\.image(\.tt\d)?\.pbcor|\.pbcor(\.tt\d)?", "pbcor"), (r"\.pb(\.tt\d)?", "pb"),
    (r"\.flux(\.pbcoverage)?", "flux"), (r"\.mask", "mask"), (r"\.residual(\.tt\d)?", "residual"),
    (r"\.model(\.tt\d)?", "model"), (r"\.psf(\.tt\d)?", "psf"), (r"\.image(\.tt\d)?", "image"),
    (r"\.alpha(\.error)?", "alpha"), (r"\.weight(\.tt\d)?", "weight"), (r"\.sumwt(\.tt\d)?", "sumwt"),
)
_ROLE_RE = [(re.compile(f"(?:{pattern})$"), role) for pattern, role in _ROLES]
# The pipeline's miscinfo/FITS TYPE (docs/casa-and-io.md §1a) -> role.
TYPE_ROLES = {"pbcorimage": "pbcor", "flux": "pb", "pb": "pb", "cleanmask": "mask", "mask": "mask",
              "residual": "residual", "model": "model", "psf": "psf", "image": "image",
              "singledish": "image"}
BEAMS = ("pb", "flux")


def role_of(name: str, type_hint: str = "") -> str:
    """An image's role: the pipeline's ``type`` when it names one, else the name's suffix
    (``X.image.pbcor.fits`` pbcor, ``X.pb.fits.gz`` pb, ``X.flux`` flux …); "" when unknown."""
    if type_hint.strip().lower() in TYPE_ROLES:
        return TYPE_ROLES[type_hint.strip().lower()]
    stem = re.sub(r"(\.fits)?(\.gz|\.tgz)?$", "", name.lower())
    return next((role for regex, role in _ROLE_RE if regex.search(stem)), "")


def unzipped(fh: BinaryIO, name: str) -> BinaryIO:
    """``fh`` itself, or a decompressing reader for gzip content (ISA-L when installed). The
    bytes decide, not the name: a planned ``X.pb.fits.gz`` opens as its uncompressed source."""
    if not name.lower().endswith(".gz"):
        return fh
    import io

    buffered = fh if hasattr(fh, "peek") else io.BufferedReader(fh)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] != b"\x1f\x8b":
        return buffered
    fh = buffered
    try:
        from isal import igzip as gz
    except ImportError:  # pragma: no cover - isal is a dependency
        import gzip as gz  # type: ignore[no-redef]
    return gz.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]


def _read(fh: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left:
        data = fh.read(min(left, CHUNK))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


_VALUE = re.compile(r"""\s*(?:'((?:[^']|'')*)'|([^/]*?))\s*(?:/.*)?$""")


def parse_cards(raw: bytes) -> dict[str, Any]:
    """Keyword -> value of a FITS header's cards (FITS 4.0 §4.1-4.2): strings (quotes
    undoubled, trailing blanks dropped, CONTINUE joined), T/F, integers, reals (E or D exponent),
    ``None`` when undefined; the first card of a keyword wins. Commentary cards are skipped.
    Written out instead of astropy's ``Header``: reading a header then costs no astropy import
    (a second of start-up on every verify), and these are the only value forms FITS has."""
    text = raw.decode("ascii")  # UnicodeDecodeError: not a FITS header
    out: dict[str, Any] = {}
    last = ""
    for at in range(0, len(text) - 79, 80):
        card = text[at:at + 80]
        key = card[:8].rstrip()
        if key == "END":
            break
        if key == "CONTINUE" and isinstance(out.get(last), str) and out[last].endswith("&"):
            more = _VALUE.match(card[8:])
            if more and more.group(1) is not None:
                out[last] = out[last][:-1] + more.group(1).replace("''", "'").rstrip()
            continue
        if card[8:10] != "= " or not key or key in out:
            continue
        m = _VALUE.match(card[10:])
        if m is None:
            raise ValueError(f"card {key!r} has no readable value")
        out[key] = last_value = (m.group(1).replace("''", "'").rstrip() if m.group(1) is not None
                                 else _number(m.group(2)))
        last = key if isinstance(last_value, str) else ""
    return out


def _number(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    if text in ("T", "F"):
        return text == "T"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        return text  # a complex value or a malformed one: kept as written


@dataclass(frozen=True)
class Head:
    """The primary header of a FITS stream, parsed, with what reading its data needs."""

    header: dict[str, Any]  # keyword -> value (parse_cards)
    raw: bytes  # the header blocks as read (for CHECKSUM)
    shape: tuple[int, ...]  # NAXIS1 … NAXISn, as FITS orders them
    bitpix: int

    @property
    def data_bytes(self) -> int:
        n = 1 if self.shape else 0
        for length in self.shape:
            n *= length
        return n * abs(self.bitpix) // 8

    def get(self, key: str, default: Any = "") -> Any:
        value = self.header.get(key, default)
        return default if value is None else value

    def squeezed(self) -> tuple[int, ...]:
        return tuple(n for n in self.shape if n != 1)


def read_head(fh: BinaryIO) -> Head:
    """Read the primary header; leaves ``fh`` at the start of the data. ``ValueError`` says
    why when the stream is no FITS image."""
    blocks = []
    while True:
        block = _read(fh, BLOCK)
        if len(block) < BLOCK:
            raise ValueError("truncated header (no END card)" if blocks or block else "empty file")
        if not blocks and not block.startswith(b"SIMPLE  ="):
            raise ValueError("no SIMPLE card: not a FITS file")
        blocks.append(block)
        if any(block[i:i + 8] == b"END     " for i in range(0, BLOCK, 80)):
            break
        if len(blocks) * BLOCK > MAX_HEADER:
            raise ValueError("header larger than 2 MiB without an END card")
    raw = b"".join(blocks)
    try:
        header = parse_cards(raw)
        bitpix, naxis = int(header["BITPIX"]), int(header["NAXIS"])
        shape = tuple(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"unreadable header ({exc})") from exc
    if bitpix not in _DTYPES:
        raise ValueError(f"BITPIX {bitpix} is not a FITS pixel type")
    return Head(header, raw, shape, bitpix)


@dataclass(frozen=True)
class Scan:
    """What one pass over the data found (NaN, blanked pixels, are left out of the range)."""

    low: float
    high: float
    not_binary: int  # pixels neither 0 nor 1 (counted when scan's ``binary``; else 0)
    complete: bool  # the data were all there
    datasum: int | None  # 1's-complement sum of data and padding, when asked for


def _fold(total: int) -> int:
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


# numpy costs ~70 ms to import, more than scanning a small image in pure Python (~150 ns a
# pixel): each process scans its first PURE_SCAN_BUDGET bytes without it, so verifying a
# package of small products imports no numpy (issue 21). Both paths give the same Scan
# (tests/test_image_scan.py proves it over generated data).
PURE_SCAN_BUDGET = 1 << 20
_pure_left = [PURE_SCAN_BUDGET]
_ARRAY_CODES = {8: "B", 16: "h", 32: "i", 64: "q", -32: "f", -64: "d"}  # big-endian on disk


def _with_numpy(nbytes: int) -> bool:
    """Whether ``nbytes`` more are scanned with numpy: once it is imported, or past the budget
    (a race between threads only moves the switch a little)."""
    if "numpy" in sys.modules or nbytes > _pure_left[0] or not _ARRAY_OK:
        return True
    _pure_left[0] -= nbytes
    return False


def _array(code: str, data: bytes) -> Any:
    out = array.array(code)
    out.frombytes(data[: len(data) - len(data) % out.itemsize])
    if sys.byteorder == "little" and out.itemsize > 1:
        out.byteswap()
    return out


def _array_ok() -> bool:
    return all(array.array(code).itemsize == abs(bitpix) // 8
               for bitpix, code in _ARRAY_CODES.items()) and array.array("I").itemsize == 4


_ARRAY_OK = _array_ok()


def _words(data: bytes, numpy: bool = True) -> int:
    """The sum of ``data``'s big-endian 32-bit words (``len(data)`` a multiple of 4)."""
    if not numpy:
        return sum(_array("I", data))
    import numpy as np

    return int(np.frombuffer(data, ">u4").sum(dtype=np.uint64))


def _pixel_stats(chunk: bytes, bitpix: int, scale: float, zero: float, numpy: bool,
                 binary: bool = True) -> tuple[float, float, int] | None:
    """(low, high, pixels neither 0 nor 1) of a chunk's finite physical values (BSCALE and
    BZERO applied in double precision, as FITS defines them; the count only when ``binary``,
    else 0); None when none is finite."""
    if not numpy:
        import math

        raw = _array(_ARRAY_CODES[bitpix], chunk)
        values = raw if (scale, zero) == (1.0, 0.0) else [p * scale + zero for p in raw]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return None
        odd = sum(1 for v in finite if v != 0 and v != 1) if binary else 0
        return float(min(finite)), float(max(finite)), odd
    import numpy as np

    dtype = np.dtype(_DTYPES[bitpix])
    pixels = np.frombuffer(chunk[: len(chunk) - len(chunk) % dtype.itemsize], dtype)
    if not pixels.size:
        return None
    if (scale, zero) != (1.0, 0.0):
        pixels = pixels.astype(np.float64) * scale + zero
    # fmin/fmax skip NaN (blanks) without the copy a mask would make: 4x faster on a cube;
    # an infinity (rare) takes the masked path, which leaves it out of the range
    low, high = np.fmin.reduce(pixels), np.fmax.reduce(pixels)
    if pixels.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        finite = pixels[np.isfinite(pixels)]
        if not finite.size:
            return None
        low, high, pixels = finite.min(), finite.max(), finite
    odd = 0
    if binary:  # NaN counts as neither 0 nor 1 here: take the non-finite ones back out
        blanks = pixels.size - np.count_nonzero(np.isfinite(pixels)) if pixels.dtype.kind == "f" else 0
        odd = int(np.count_nonzero((pixels != 0) & (pixels != 1))) - int(blanks)
    return float(low), float(high), odd


def scan(fh: BinaryIO, head: Head, *, values: bool = True, datasum: bool = False,
         binary: bool = True) -> Scan:
    """One pass over the data (and padding, for ``datasum``) at :data:`CHUNK` bytes at a time;
    small data without numpy (:data:`PURE_SCAN_BUDGET`). ``binary``: count the pixels neither
    0 nor 1 (a mask's rule; a primary beam needs only the range)."""
    numpy = _with_numpy(head.data_bytes)
    scale, zero = float(head.get("BSCALE", 1.0)), float(head.get("BZERO", 0.0))
    low, high, odd, total = float("inf"), float("-inf"), 0, 0
    left = head.data_bytes
    while left > 0:
        chunk = _read(fh, min(left, CHUNK))
        if not chunk:
            break
        left -= len(chunk)
        if datasum:
            total += _words(chunk[: len(chunk) - len(chunk) % 4], numpy)
        stats = _pixel_stats(chunk, head.bitpix, scale, zero, numpy, binary) if values else None
        if stats:
            low, high, odd = min(low, stats[0]), max(high, stats[1]), odd + stats[2]
    if datasum and left <= 0:
        padding = _read(fh, -head.data_bytes % BLOCK)
        total += _words(padding + bytes(-len(padding) % 4), numpy)
    return Scan(low, high, odd, left <= 0, _fold(total) if datasum else None)


def checksum_state(head: Head, fh: BinaryIO) -> str:
    """``ok``, ``bad: …`` or ``""`` (no CHECKSUM/DATASUM): the FITS checksum convention, read
    on from the data start of ``fh``."""
    want_data, want_all = head.header.get("DATASUM"), head.header.get("CHECKSUM")
    if want_data is None and want_all is None:
        return ""
    got = scan(fh, head, values=False, datasum=True)
    if not got.complete:
        return "bad: data truncated"
    if want_data is not None and str(want_data).strip() and int(str(want_data)) != got.datasum:
        return "bad: DATASUM differs (data changed)"
    if want_all is not None and _fold(_words(head.raw, numpy=False)  # a header: a few blocks
                                      + (got.datasum or 0)) != 0xFFFFFFFF:
        return "bad: CHECKSUM differs (header or data changed)"
    return "ok"


def frequency(head: Head) -> str:
    """The spectral axis in a few words: ``FREQ 230.538-230.540 GHz (3 ch)``."""
    for i, n in enumerate(head.shape, start=1):
        ctype = str(head.get(f"CTYPE{i}")).upper()
        if not ctype.startswith(("FREQ", "VRAD", "VOPT", "VELO", "FELO")):
            continue
        crval, cdelt = float(head.get(f"CRVAL{i}", 0.0)), float(head.get(f"CDELT{i}", 0.0))
        first = crval + (1 - float(head.get(f"CRPIX{i}", 1.0))) * cdelt
        last = first + (n - 1) * cdelt
        if ctype.startswith("FREQ"):
            return f"FREQ {first / 1e9:.6g}-{last / 1e9:.6g} GHz ({n} ch)"
        return f"{ctype.split('-')[0]} {first:.6g}-{last:.6g} {head.get(f'CUNIT{i}')} ({n} ch)"
    return ""


_PREFIX = r"(?:Y|Z|E|P|T|G|M|k|h|da|d|c|m|u|µ|n|p|f|a|z|y)?"
_JY = re.compile(rf"^{_PREFIX}Jy(?:\s*/\s*(?:beam|pixel|pix|sr|arcsec2|arcsec\*\*2)|\.(?:beam|pixel)\^?-1)?$",
                 re.I)
_KELVIN = re.compile(rf"^{_PREFIX}K$")
_UNIT = re.compile(r"^[A-Za-zµ]+(?:\s*(?:[/.*]|\*\*|\^)\s*[-+]?[A-Za-z0-9µ]+)*$")


def _bunit_problem(bunit: str) -> str:
    """"" when ``bunit`` is a brightness unit (Jy/beam, Jy/pixel with any SI prefix, CASA's
    JY/BEAM too, or K); the FITS unit grammar's few brightness forms, matched directly (no
    astropy import for one card)."""
    text = bunit.strip()
    if not text:
        return "no BUNIT: the image's unit is unknown"
    if _JY.match(text) or _KELVIN.match(text):
        return ""
    if not _UNIT.match(text):
        return f"BUNIT {bunit!r} is not a unit"
    return f"BUNIT {bunit!r} is not a brightness unit (Jy/beam, Jy/pixel, K)"


def _partner(name: str, heads: dict[str, Head]) -> str | None:
    """The primary beam packaged with ``product/<stem>.pbcor.fits`` (as missing_pb_partners)."""
    stem = name.removesuffix(".pbcor.fits")
    stems = (stem, stem.removesuffix(".image"), re.sub(r"\.tt\d$", "", stem))
    return next((p for s in stems for p in sorted(heads)
                 if p.startswith((f"{s}.pb", f"{s}.flux")) and not p.endswith(".pbcor.fits")), None)


def product_findings(view: PackageView) -> list[Finding]:
    """docs/domain.md §8.4, with the data: every FITS product opens and has a sane BUNIT; a
    primary beam's values lie in [0, 1] and a mask's are 0 or 1 (streamed in chunks, images
    up to :data:`VALUE_CAP` of data; bigger ones get an INFO saying so); each
    ``*.pbcor.fits`` has the shape of its primary beam. Products whose content is not at hand
    (a rehearsal, a file still to be compressed or exported) are skipped."""
    out: list[Finding] = []
    heads: dict[str, Head] = {}
    for name in sorted(n for n in view.files if n.startswith("product/")
                       and n.lower().endswith((".fits", ".fits.gz"))):
        fh = view.open(name)
        if fh is None:
            continue
        with fh:
            stream = unzipped(fh, name)
            try:
                head = read_head(stream)
            except (ValueError, OSError, EOFError) as exc:
                out.append(Finding(Level.WARN, "product.fits", name, f"not a readable FITS "
                                   f"image: {exc}"))
                continue
            heads[name] = head
            role = role_of(name, str(head.get("TYPE")))
            if role in (*BEAMS, "mask"):
                out += _value_findings(name, role, stream, head)
            elif role in ("pbcor", "image", ""):
                problem = _bunit_problem(str(head.get("BUNIT")))
                if problem:
                    out.append(Finding(Level.WARN, "product.bunit", name, problem))
    for name in (n for n in sorted(heads) if n.lower().endswith(".pbcor.fits")):
        partner = _partner(name, heads)
        if partner and heads[partner].squeezed() != heads[name].squeezed():
            out.append(Finding(Level.ERROR, "product.pb_shape", name,
                               f"shape {_shape(heads[name])}, its primary beam {partner} has "
                               f"{_shape(heads[partner])}: not this image's primary beam"))
    return out


def _shape(head: Head) -> str:
    return "x".join(map(str, head.shape)) or "(no data)"


def _value_findings(name: str, role: str, stream: BinaryIO, head: Head) -> list[Finding]:
    if head.data_bytes > VALUE_CAP:  # verify --fast must stay fast: say what was not read
        return [Finding(Level.INFO, "product.values", name, f"values not checked: "
                        f"{head.data_bytes >> 20} MiB of data, over the {VALUE_CAP >> 20} MiB cap")]
    try:
        got = scan(stream, head, binary=role == "mask")
    except (OSError, EOFError) as exc:
        return [Finding(Level.WARN, "product.fits", name, f"data unreadable ({exc})")]
    if not got.complete:
        return [Finding(Level.WARN, "product.fits", name, "data truncated (shorter than its "
                        "header says)")]
    if role == "mask" and got.not_binary:
        return [Finding(Level.ERROR, "product.mask_values", name, f"{got.not_binary} pixel(s) "
                        f"neither 0 nor 1 (range {got.low:g} to {got.high:g}): not a mask")]
    if role in BEAMS and got.low <= got.high and (got.low < 0 or got.high > 1 + 1e-3):
        return [Finding(Level.ERROR, "product.pb_values", name, f"values {got.low:g} to "
                        f"{got.high:g}, outside [0, 1]: not a primary beam")]
    return []
