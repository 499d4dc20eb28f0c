"""All provenance readers over one file's bytes: `read_provenance`. Never raises; every failure is a finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from gendet.provenance.c2pa_manifest import c2pa_findings
from gendet.provenance.container import Metadata, read_metadata
from gendet.provenance.exif import exif_findings
from gendet.provenance.findings import CONTAINER, Finding, clip
from gendet.provenance.generators import text_findings
from gendet.provenance.watermark import watermark_findings
from gendet.provenance.xmp import xmp_findings


@dataclass(frozen=True)
class ProvenanceOptions:
    """watermark: also decode invisible watermarks (needs the decoded pixels; tens of ms per image).
    trust_anchors: PEM certificates whose C2PA signers count as trusted ("signed"); None: none are."""

    watermark: bool = False
    trust_anchors: str | None = None


def _guarded(signal: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return fn()
    except RecursionError:
        return [Finding(signal, "unknown", "declared", f"{signal} present but unreadable", error="nested too deeply")]
    except Exception as e:  # noqa: BLE001 - a malformed block is a finding with an error, never a crash
        return [Finding(signal, "unknown", "declared", f"{signal} present but unreadable",
                        error=f"{type(e).__name__}: {clip(str(e), 120)}")]


def metadata_findings(md: Metadata, data: bytes, options: ProvenanceOptions) -> list[Finding]:
    where = {"png": "PNG text chunk", "webp": "WebP"}.get(md.format, f"{md.format or 'image'} text")
    out = _guarded("generator-metadata", lambda: text_findings(md.texts, where))
    for raw in md.exif:
        out += _guarded("exif", lambda raw=raw: exif_findings(raw))
    for packet in md.xmp:
        out += _guarded("xmp", lambda packet=packet: xmp_findings(packet))
    for comment in md.comments:
        out += _guarded("generator-metadata", lambda comment=comment: text_findings([("Comment", comment, False)],
                                                                                     "JPEG comment"))
    if md.c2pa:
        out += _guarded("c2pa", lambda: c2pa_findings(data, md.format, options.trust_anchors))
    out += [Finding(CONTAINER, "unknown", "heuristic", "metadata container", error=e) for e in md.errors[:8]]
    return _unique(out)


def _unique(findings: list[Finding]) -> list[Finding]:
    """One finding per (signal, says, detail): JPEG EXIF and XMP often repeat the same tool name."""
    seen, out = set(), []
    for f in findings:
        key = (f.signal, f.says, f.detail, f.error)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def read_provenance(data: bytes, options: ProvenanceOptions | None = None,
                    image: Image.Image | None = None) -> list[Finding]:
    """Findings for one file's bytes; with `options.watermark`, `image` (its decoded pixels) is checked too."""
    options = options or ProvenanceOptions()
    out = metadata_findings(read_metadata(data), data, options)
    if options.watermark and image is not None:
        out += _guarded("invisible-watermark", lambda: watermark_findings(image))
    return out
