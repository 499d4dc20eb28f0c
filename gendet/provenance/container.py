"""The metadata a file carries, read from its bytes without decoding pixels, within fixed budgets.

PNG (tEXt/zTXt/iTXt/eXIf/caBX chunks, CRC-checked), JPEG (APP1 EXIF/XMP, APP11 JUMBF, COM; the walk
stops at the first scan), WebP (EXIF, XMP, C2PA chunks); any other format Pillow opens gives its EXIF
and XMP from the header. Anything malformed becomes an entry in `errors` and the rest is still read:
a 10 MB text chunk is kept as its first `MAX_TEXT_BYTES`, a chunk with a wrong CRC is skipped, a
compressed chunk that inflates past the budget is cut.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from gendet.data.decode import iter_jpeg_segments

MAX_TEXT_BYTES = 1 << 20  # per text value, after decompression
MAX_TOTAL_TEXT = 8 << 20  # all text values of one file
MAX_CHUNKS = 4096  # metadata chunks/segments looked at (gendet's decode limit for PNG chunks)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_APP1 = b"http://ns.adobe.com/xmp/extension/\x00"


@dataclass
class Metadata:
    format: str = ""  # "png", "jpeg", "webp", or Pillow's format name, lower case
    texts: list[tuple[str, str, bool]] = field(default_factory=list)  # (key, value, cut to MAX_TEXT_BYTES)
    exif: list[bytes] = field(default_factory=list)
    xmp: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    c2pa: bool = False  # a JUMBF / C2PA box is present
    errors: list[str] = field(default_factory=list)
    _text_budget: int = MAX_TOTAL_TEXT

    def add_text(self, key: str, value: bytes | str, where: str, cut: bool = False) -> None:
        """Keep one text value within the budgets; `cut`: it was already cut (a compressed chunk)."""
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        cut = cut or len(raw) > MAX_TEXT_BYTES
        if len(raw) > MAX_TEXT_BYTES:
            self.errors.append(f"{where} {key!r} holds {len(raw)} bytes; only the first {MAX_TEXT_BYTES} were read")
        keep = min(len(raw), MAX_TEXT_BYTES, self._text_budget)
        if keep < min(len(raw), MAX_TEXT_BYTES):
            self.errors.append(f"{where} {key!r} skipped: the file's text budget of {MAX_TOTAL_TEXT} bytes is spent")
            cut = True
        self._text_budget -= keep
        text = value[:keep] if isinstance(value, str) else raw[:keep].decode("utf-8", "replace")
        self.texts.append((key, text, cut))


def _inflate(data: bytes) -> tuple[bytes, bool]:
    """zlib-decompress at most MAX_TEXT_BYTES (+1 to tell it was cut); (bytes, cut)."""
    d = zlib.decompressobj()
    out = d.decompress(data, MAX_TEXT_BYTES + 1)
    return out[:MAX_TEXT_BYTES], len(out) > MAX_TEXT_BYTES


def _png_text(kind: bytes, body: bytes, md: Metadata) -> None:
    key, sep, rest = body.partition(b"\x00")
    name = key.decode("latin-1", "replace")
    if not sep:
        raise ValueError("no keyword separator")
    if kind == b"tEXt":
        md.add_text(name, rest.decode("latin-1"), "PNG tEXt")
    elif kind == b"zTXt":
        text, cut = _inflate(rest[1:])
        if cut:
            md.errors.append(f"PNG zTXt {name!r} inflates past {MAX_TEXT_BYTES} bytes; cut")
        md.add_text(name, text.decode("latin-1"), "PNG zTXt", cut)
    else:  # iTXt: compressed flag, method, language\0, translated keyword\0, UTF-8 text
        if len(rest) < 2:
            raise ValueError("iTXt header truncated")
        compressed, text, cut = rest[0], rest[2:], False
        text = text.split(b"\x00", 2)[-1]
        if compressed:
            text, cut = _inflate(text)
            if cut:
                md.errors.append(f"PNG iTXt {name!r} inflates past {MAX_TEXT_BYTES} bytes; cut")
        if name == "XML:com.adobe.xmp":
            md.xmp.append(text[:MAX_TEXT_BYTES].decode("utf-8", "replace"))
        else:
            md.add_text(name, text, "PNG iTXt", cut)


def _read_png(data: bytes, md: Metadata) -> None:
    pos, n, seen = 8, len(data), 0
    if n < 8 + 12:
        md.errors.append("PNG truncated before its first chunk")
    while pos + 12 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > n:
            md.errors.append(f"PNG chunk {kind.decode('latin-1', 'replace')!r} truncated at byte {pos}")
            return
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX"):
            seen += 1
            body = data[pos + 8 : pos + 8 + length]
            (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
            label = kind.decode()
            if zlib.crc32(kind + body) != crc:
                md.errors.append(f"PNG {label} chunk at byte {pos} has a wrong CRC; its content was not used")
            elif kind == b"eXIf":
                md.exif.append(body)
            elif kind == b"caBX":
                md.c2pa = True
            else:
                try:
                    _png_text(kind, body, md)
                except (ValueError, zlib.error) as e:
                    md.errors.append(f"PNG {label} chunk at byte {pos} is malformed: {e}")
        if kind == b"IEND" or seen > MAX_CHUNKS:
            return
        pos = end
    if pos < n:
        md.errors.append(f"PNG truncated inside a chunk header at byte {pos}")


def _read_jpeg(data: bytes, md: Metadata) -> None:
    xmp_ext = 0
    for i, (marker, start, end) in enumerate(iter_jpeg_segments(data)):
        if marker == 0xDA or i > MAX_CHUNKS:  # metadata precedes the first scan
            return
        body = data[start + 4 : end]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            md.exif.append(body[6:])
        elif marker == 0xE1 and body.startswith(_XMP_APP1):
            md.xmp.append(body[len(_XMP_APP1) : len(_XMP_APP1) + MAX_TEXT_BYTES].decode("utf-8", "replace"))
        elif marker == 0xE1 and body.startswith(_XMP_EXT_APP1):
            xmp_ext += 1  # extended XMP holds thumbnails and large blobs, not the source type
        elif marker == 0xEB and (b"jumb" in body[:64] or b"c2pa" in body[:128]):
            md.c2pa = True
        elif marker == 0xFE:
            md.comments.append(body[:4096].decode("utf-8", "replace"))


def _read_webp(data: bytes, md: Metadata) -> None:
    pos, n = 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            return
        kind, length = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            md.errors.append(f"WebP chunk {kind.decode('latin-1', 'replace')!r} truncated")
            return
        if kind == b"EXIF":
            md.exif.append(body[6:] if body.startswith(b"Exif\x00\x00") else body)
        elif kind == b"XMP ":
            md.xmp.append(body[:MAX_TEXT_BYTES].decode("utf-8", "replace"))
        elif kind == b"C2PA":
            md.c2pa = True
        pos += 8 + length + (length & 1)


def sniff_format(data: bytes) -> str | None:
    """"png", "jpeg", "webp", another format Pillow recognises (lower case), or None for non-images."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format or "image").lower()
    except Exception:  # noqa: BLE001 - anything Pillow cannot open is not an image here
        return None


def _read_other(data: bytes, md: Metadata) -> None:
    """Formats without a walker here (TIFF, GIF, HEIF, ...): what Pillow parses from the header. Files Pillow
    does not recognise carry no metadata here (the pixel decoder reports them)."""
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return
    with img:
        md.format = str(img.format or "").lower()
        exif = img.getexif()
        if exif:
            md.exif.append(exif.tobytes())
        xmp = img.info.get("xmp")
        if isinstance(xmp, bytes | str):
            md.xmp.append(xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp)
        for key, value in img.info.items():
            if isinstance(value, str) and key not in ("xmp",):
                md.add_text(str(key), value, md.format or "image")
    # C2PA in ISO BMFF (HEIF/AVIF) or TIFF lives in a box labelled "c2pa"
    md.c2pa = md.c2pa or b"c2pa" in data


def read_metadata(data: bytes) -> Metadata:
    """Every metadata item `data` carries (see the module docstring); never raises on malformed input."""
    md = Metadata()
    try:
        if data.startswith(PNG_SIGNATURE):
            md.format = "png"
            _read_png(data, md)
        elif data[:2] == b"\xff\xd8":
            md.format = "jpeg"
            _read_jpeg(data, md)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            md.format = "webp"
            _read_webp(data, md)
        else:
            _read_other(data, md)
    except Exception as e:  # noqa: BLE001 - metadata must never end a scan; the pixel path reports the file
        md.errors.append(f"metadata could not be read: {type(e).__name__}: {e}")
    return md
