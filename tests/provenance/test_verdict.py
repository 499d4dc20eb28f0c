"""The one verdict rule."""

from __future__ import annotations

from gendet.provenance import Finding, decide

GEN = Finding("c2pa", "generated", "signed", "C2PA manifest", generator="X")
DECLARED_EDIT = Finding("iptc-digital-source-type", "edited", "declared", "XMP compositeWithTrainedAlgorithmicMedia")
CAMERA = Finding("camera-exif", "captured", "heuristic", "EXIF camera")
BROKEN = Finding("generator-metadata", "generated", "declared", "ComfyUI graph", error="malformed JSON")


def test_a_decisive_finding_wins_over_a_real_pixel_score_and_says_so() -> None:
    d = decide(0.1, 0.5, [GEN])
    assert d.verdict == "generated" and d.reason.startswith("provenance: c2pa (signed, X)")
    assert "pixels say real" in d.conflict


def test_without_decisive_findings_the_pixels_decide() -> None:
    assert decide(0.7, 0.5, [CAMERA]).verdict == "generated"
    assert "camera-exif" in decide(0.7, 0.5, [CAMERA]).conflict
    assert decide(0.2, 0.5, [CAMERA, BROKEN]) == decide(0.2, 0.5, []) == decide(0.2, 0.5, None)
    assert decide(0.2, 0.5, None).verdict == "real" and decide(0.2, 0.5, None).conflict is None


def test_edited_and_unknown() -> None:
    assert decide(0.2, 0.5, [DECLARED_EDIT]).verdict == "edited"
    both = decide(0.9, 0.5, [GEN, DECLARED_EDIT])
    assert both.verdict == "generated" and "both generated and edited" in both.conflict
    assert decide(None, 0.5, [CAMERA]).verdict == "unknown"
    assert decide(None, 0.5, [GEN]).verdict == "generated"
