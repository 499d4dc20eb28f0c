"""C2PA manifests signed in the test with a test CA: valid, trusted, tampered, garbage."""

from __future__ import annotations

import pytest

from gendet.provenance import ProvenanceOptions, read_provenance
from provenance.helpers import AI_SOURCE, chunk, png_bytes, signed_jpeg, tampered, with_chunks

pytest.importorskip("c2pa")


def c2pa_finding(data: bytes, trust: bytes | None = None):
    fs = [f for f in read_provenance(data, ProvenanceOptions(trust_anchors=trust.decode() if trust else None))
          if f.signal == "c2pa"]
    assert len(fs) == 1, fs
    return fs[0]


def test_a_valid_manifest_from_an_untrusted_signer_is_declared_not_signed(tmp_path) -> None:
    data, _ = signed_jpeg(tmp_path)
    f = c2pa_finding(data)
    assert (f.says, f.strength, f.error, f.generator) == ("generated", "declared", None, "TestDiffusion")
    assert "not in the trust list" in f.detail and "trainedAlgorithmicMedia" in f.detail
    assert f.decisive


def test_a_manifest_whose_signer_chains_to_a_given_anchor_is_signed(tmp_path) -> None:
    data, ca = signed_jpeg(tmp_path)
    f = c2pa_finding(data, ca)
    assert (f.says, f.strength, f.error) == ("generated", "signed", None) and "(trusted)" in f.detail


def test_a_tampered_image_is_reported_invalid_and_never_decides(tmp_path) -> None:
    data, ca = signed_jpeg(tmp_path)
    f = c2pa_finding(tampered(data), ca)
    assert f.strength == "heuristic" and f.error and "dataHash.mismatch" in f.error and not f.decisive


def test_an_edit_with_ai_is_edited(tmp_path) -> None:
    data, _ = signed_jpeg(tmp_path, source=AI_SOURCE.replace("trained", "compositeWithTrained"))
    assert c2pa_finding(data).says == "edited"


def test_garbage_and_truncated_jumbf_boxes_are_errors(tmp_path) -> None:
    data, _ = signed_jpeg(tmp_path)
    at = data.find(b"jumb")
    garbage = data[: at + 4] + b"\x00" * 64 + data[at + 68 :]
    for broken in (garbage, data[: len(data) // 2]):
        fs = read_provenance(broken)
        assert all(not f.decisive for f in fs if f.signal == "c2pa")
    png = with_chunks(png_bytes(), chunk(b"caBX", b"\x00\x00\x00\x30jumb" + b"\xff" * 40))
    (f,) = [f for f in read_provenance(png) if f.signal == "c2pa"] or [None]
    assert f is None or (f.error and not f.decisive)
