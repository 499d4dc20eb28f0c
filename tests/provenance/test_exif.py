"""EXIF: camera evidence, an A1111 UserComment, Software tags."""

from __future__ import annotations

from gendet.provenance import read_provenance
from provenance.helpers import camera_jpeg


def signals(data: bytes) -> dict[str, tuple[str, str]]:
    return {f.signal: (f.says, f.strength) for f in read_provenance(data)}


def test_camera_exif_is_a_weak_captured_finding() -> None:
    (f,) = read_provenance(camera_jpeg())
    assert (f.signal, f.says, f.strength) == ("camera-exif", "captured", "heuristic")
    assert "Canon EOS 5D Mark II" in f.detail and "1/200 s" in f.detail and "f/5.6" in f.detail


def test_a1111_user_comment_in_a_jpeg_is_declared_generated() -> None:
    comment = b"UNICODE\x00" + "a dog\nSteps: 30, Model: sdxl_base, Version: v1.9.4".encode("utf-16-be")
    fs = read_provenance(camera_jpeg(make="", user_comment=comment))
    (f,) = [f for f in fs if f.signal == "generator-metadata"]
    assert (f.says, f.strength, f.model) == ("generated", "declared", "sdxl_base")


def test_a_software_tag_naming_a_generator_or_an_editor() -> None:
    assert signals(camera_jpeg(make="", software="Adobe Firefly"))["software-tag"] == ("generated", "declared")
    assert signals(camera_jpeg(software="Adobe Photoshop 7.0"))["software-tag"] == ("edited", "heuristic")
