"""The explanation text is built from the measured numbers, not from the label."""

from __future__ import annotations

import dataclasses
import re

from explain.toys import Constant, CornerBrightness, blurred, png_pp, real_crop, with_checkerboard
from gendet.explain import explain_image
from gendet.explain.evidence import UNUSUAL_Z, explanation_text


def _explain(det, img, **kw):
    return explain_image(det, img, png_pp(64), 0.5, autoencoder=None, **kw)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.) (?=[A-Z])", text)


def test_text_quotes_the_computed_numbers() -> None:
    det = CornerBrightness(image_size=64, scale=4.0).eval()
    ev = _explain(det, real_crop(64, index=1), occlusion="mean")
    s = _sentences(ev.text)
    assert 2 <= len(s) <= 4
    verdict = "generated" if ev.prob >= 0.5 else "real"
    assert s[0].startswith("Scored ") and s[0].endswith(f"(threshold 0.50): {verdict}.")
    assert abs(float(s[0].split()[1]) - ev.prob) < 0.005
    top = ev.top_regions[0]
    assert top.name in ev.text and f"{abs(top.occlusion_delta):.2f}" in ev.text
    assert f"{top.relevance_share:.0%}" in ev.text  # the gradient heat map agrees: its share is quoted


def test_same_label_different_cues_give_different_text() -> None:
    det = Constant(image_size=64).eval()  # same score and label for every image
    img = real_crop(64, index=3)
    sharp, soft, board = (_explain(det, im) for im in (img, blurred(img), with_checkerboard(img)))
    assert sharp.label == soft.label == board.label
    assert len({sharp.text, soft.text, board.text}) == 3
    assert "less high-frequency spectral energy" in soft.text
    z = soft.cues["hf_share"]["z"]
    assert f"{abs(z):.1f} sd less high-frequency" in soft.text
    assert "periodic spectral peak" in board.text and f"{board.cues['spectral_peak']['value']:.0f}x" in board.text
    assert "No single region drives the score" in sharp.text  # a constant model: occlusion changes nothing


def test_label_alone_does_not_choose_the_text() -> None:
    det = Constant(image_size=64).eval()
    ev = _explain(det, blurred(real_crop(64, index=3)))
    flipped = dataclasses.replace(ev, label="real" if ev.label == "fake" else "fake")
    # only the verdict word of the first sentence follows the label; the evidence sentences do not
    assert _sentences(explanation_text(flipped))[1:] == _sentences(ev.text)[1:]


def test_no_unusual_cue_is_said_plainly() -> None:
    det = Constant(image_size=64).eval()
    ev = _explain(det, real_crop(64, index=3))
    calm = {k: dict(v, z=0.0) for k, v in ev.cues.items()}
    calm_regions = [dataclasses.replace(r, cues={k: dict(v, z=0.1) for k, v in r.cues.items()}) for r in ev.regions]
    text = explanation_text(dataclasses.replace(ev, cues=calm, regions=calm_regions))
    assert "No measured cue" in text and f"within {UNUSUAL_Z} sd" in text
    assert "sd more" not in text and "sd less" not in text
