"""XMP: IPTC digital source type, AI system used, malformed and hostile packets."""

from __future__ import annotations

import pytest

from gendet.provenance.xmp import xmp_findings
from provenance.helpers import xmp_packet

BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.mark.parametrize("term,says", [("trainedAlgorithmicMedia", "generated"),
                                       ("compositeWithTrainedAlgorithmicMedia", "edited"),
                                       ("digitalCapture", "captured"), ("screenCapture", "unknown")])
def test_digital_source_type_as_an_attribute(term, says) -> None:
    (f,) = xmp_findings(xmp_packet(BASE + term))
    assert (f.signal, f.says, f.strength, f.error) == ("iptc-digital-source-type", says, "declared", None)


def test_digital_source_type_as_an_element_and_the_ai_system() -> None:
    extra = (f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{BASE}trainedAlgorithmicMedia"/>'
             "<Iptc4xmpExt:AISystemUsed>Midjourney</Iptc4xmpExt:AISystemUsed>"
             "<xmp:CreatorTool>Adobe Photoshop 25.0</xmp:CreatorTool>")
    fs = {f.signal: f for f in xmp_findings(xmp_packet(None, extra))}
    assert fs["iptc-digital-source-type"].says == "generated"
    assert fs["iptc-ai-system"].generator == "Midjourney"
    assert fs["software-tag"].says == "edited"


def test_malformed_and_entity_expanding_xmp_are_errors() -> None:
    (f,) = xmp_findings("<x:xmpmeta><rdf:RDF>")
    assert f.error and "malformed XMP" in f.error and not f.decisive
    laughs = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
              '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&c;</x:xmpmeta>')
    (g,) = xmp_findings(laughs)
    assert g.error and not g.decisive
