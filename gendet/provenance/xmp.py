"""XMP: IPTC `DigitalSourceType` (Midjourney, ChatGPT, Firefly and others write it), `AISystemUsed`, CreatorTool.

Parsed with defusedxml (no entity expansion, no external references); malformed XMP is a finding
with an error.
"""

from __future__ import annotations

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from gendet.provenance.findings import AI_SYSTEM, SOURCE_TYPE, Finding, Says, clip
from gendet.provenance.generators import software_finding

IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
SOURCE_TYPE_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC NewsCodes digital source types -> what they say about the image.
SOURCE_TYPES: dict[str, Says] = {
    "trainedAlgorithmicMedia": "generated", "algorithmicMedia": "generated",
    "compositeWithTrainedAlgorithmicMedia": "edited", "algorithmicallyEnhanced": "edited",
    "compositeSynthetic": "edited", "composite": "edited", "humanEdits": "edited",
    "digitalCapture": "captured", "negativeFilm": "captured", "positiveFilm": "captured", "print": "captured",
    "minorHumanEdits": "captured", "compositeCapture": "captured",
}


def source_type_says(uri: str) -> tuple[Says, str]:
    """(what a DigitalSourceType URI says, its short name)."""
    term = uri.strip().rstrip("/").rsplit("/", 1)[-1]
    return SOURCE_TYPES.get(term, "unknown"), term


def _values(root: ElementTree.Element, ns: str, name: str) -> list[str]:
    """An XMP property's values, whether written as an attribute or an element (rdf:li lists included)."""
    tag = f"{{{ns}}}{name}"
    out = [el.attrib[tag] for el in root.iter() if tag in el.attrib]
    for el in root.iter(tag):
        resource = el.attrib.get(f"{{{RDF_NS}}}resource")
        text = resource or "".join(el.itertext())
        if text.strip():
            out.append(text.strip())
    return out


def xmp_findings(packet: str) -> list[Finding]:
    """Findings from one XMP packet."""
    start = packet.find("<x:xmpmeta")
    end = packet.rfind("</x:xmpmeta>")
    body = packet[start : end + len("</x:xmpmeta>")] if start >= 0 and end > start else packet.strip()
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as e:
        return [Finding(SOURCE_TYPE, "unknown", "declared", "XMP packet present but unreadable",
                        error=f"malformed XMP: {clip(str(e), 100)}")]
    out: list[Finding] = []
    for uri in _values(root, IPTC_EXT, "DigitalSourceType"):
        says, term = source_type_says(uri)
        out.append(Finding(SOURCE_TYPE, says, "declared", f"XMP Iptc4xmpExt:DigitalSourceType = {term}"))
    systems = _values(root, IPTC_EXT, "AISystemUsed")
    versions = _values(root, IPTC_EXT, "AISystemVersionUsed")
    for system in systems:
        out.append(Finding(AI_SYSTEM, "generated", "declared", f"XMP Iptc4xmpExt:AISystemUsed = {clip(system, 60)}"
                           + (f" {clip(versions[0], 30)}" if versions else ""), generator=clip(system, 60)))
    for tool in _values(root, XMP_NS, "CreatorTool"):
        found = software_finding(tool, "XMP CreatorTool")
        if found is not None:
            out.append(found)
    return out
