"""EXIF: `Software` naming a generator or an editor, an A1111-style `UserComment`, and camera evidence."""

from __future__ import annotations

from PIL import Image

from gendet.provenance.findings import CAMERA, Finding, clip
from gendet.provenance.generators import a1111_parameters, software_finding

_MAKE, _MODEL, _SOFTWARE, _DESCRIPTION, _EXIF_IFD = 0x010F, 0x0110, 0x0131, 0x010E, 0x8769
_EXPOSURE, _FNUMBER, _ISO, _ORIGINAL, _USER_COMMENT = 0x829A, 0x829D, 0x8827, 0x9003, 0x9286
_CHARSET_PREFIXES = (b"ASCII\x00\x00\x00", b"UNICODE\x00", b"JIS\x00\x00\x00\x00\x00", b"\x00" * 8)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip()


def user_comment(raw: object) -> str:
    """EXIF UserComment: an 8-byte charset prefix, then the text (A1111 writes UNICODE = UTF-16)."""
    if not isinstance(raw, bytes):
        return _text(raw)
    head, body = raw[:8], raw[8:]
    if head == b"UNICODE\x00":
        big = body[:1] == b"\x00"
        return body.decode("utf-16-be" if big else "utf-16-le", "replace").replace("\x00", "").strip()
    if head in _CHARSET_PREFIXES:
        return _text(body)
    return _text(raw)


def _exposure(ifd: dict) -> str:
    parts = []
    if _EXPOSURE in ifd:
        t = float(ifd[_EXPOSURE])
        parts.append(f"1/{round(1 / t)} s" if 0 < t < 1 else f"{t:g} s")
    if _FNUMBER in ifd:
        parts.append(f"f/{float(ifd[_FNUMBER]):g}")
    if _ISO in ifd:
        parts.append(f"ISO {_text(ifd[_ISO])}")
    if _ORIGINAL in ifd:
        parts.append(f"taken {_text(ifd[_ORIGINAL])}")
    return ", ".join(parts)


def exif_findings(raw: bytes) -> list[Finding]:
    """Findings from one EXIF block (TIFF header onwards); ValueError/struct errors propagate to the caller."""
    exif = Image.Exif()
    exif.load(raw)
    ifd = exif.get_ifd(_EXIF_IFD)
    out: list[Finding] = []
    if _SOFTWARE in exif:
        found = software_finding(_text(exif[_SOFTWARE]), "EXIF Software")
        if found is not None:
            out.append(found)
    comment = user_comment(ifd[_USER_COMMENT]) if _USER_COMMENT in ifd else ""
    described = _text(exif.get(_DESCRIPTION, ""))
    for text, where in ((comment, "EXIF UserComment"), (described, "EXIF ImageDescription")):
        if text:
            found = a1111_parameters(text, where)
            if found is not None:
                out.append(found)
    make, model = _text(exif.get(_MAKE, "")), _text(exif.get(_MODEL, ""))
    if make or model:
        camera = model if make.split(" ")[0].lower() in model.lower() else f"{make} {model}".strip()
        shot = _exposure(ifd)
        out.append(Finding(CAMERA, "captured", "heuristic", f"EXIF camera {clip(camera, 60)}"
                           + (f" ({shot})" if shot else " (no exposure data)") + "; EXIF is easily copied or forged"))
    return out
