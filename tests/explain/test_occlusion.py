"""Occlusion: deltas are exactly prob(original) - prob(occluded), and the cell a model reads ranks first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.toys import CornerBrightness, CornerDetail, real_crop
from gendet.data.preprocess import ImageTransform
from gendet.explain import explain_image
from gendet.explain.cues import cell_boxes
from gendet.explain.evidence import occluded_inputs


def test_cell_boxes_tile_any_size() -> None:
    boxes = cell_boxes(30, 31, 4)
    assert len(boxes) == 16 and boxes[0] == (0, 0, 8, 8) and boxes[-1][2:] == (31, 30)
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    assert area == 30 * 31


@pytest.mark.parametrize("mode", ["blur", "mean"])
def test_occluded_inputs_change_only_their_cell(mode: str) -> None:
    x = torch.randn(1, 3, 32, 32)
    occ = occluded_inputs(x, 4, mode)
    assert occ.shape == (16, 3, 32, 32)
    for i, (x0, y0, x1, y1) in enumerate(cell_boxes(32, 32, 4)):
        diff = (occ[i] - x[0]).abs().sum(dim=0)
        assert diff[y0:y1, x0:x1].sum() > 0
        diff[y0:y1, x0:x1] = 0
        assert diff.sum() == 0


@pytest.mark.parametrize(("toy", "mode"), [(CornerBrightness, "mean"), (CornerDetail, "blur")])
def test_deltas_are_exact_and_the_read_cell_ranks_first(toy, mode: str) -> None:
    det = toy(image_size=32).eval()
    pp = det.preprocess("png")
    img = real_crop(48, index=1)
    ev = explain_image(det, img, pp, 0.5, occlusion=mode, top=3, autoencoder=None)

    x = ImageTransform(pp, train=False)(img, np.random.default_rng(0))[None]
    with torch.no_grad():
        p0 = det({"image": x})["prob"].item()
        p_occ = det({"image": occluded_inputs(x, 4, mode)})["prob"].numpy()
    assert ev.prob == pytest.approx(p0, abs=1e-7)
    np.testing.assert_allclose([r.occlusion_delta for r in ev.regions], p0 - p_occ, atol=1e-7)
    np.testing.assert_allclose([r.prob_occluded for r in ev.regions], p_occ, atol=1e-7)

    assert ev.top[0] == 0 and ev.top_regions[0].name.startswith("top-left")
    assert abs(ev.regions[0].occlusion_delta) > 1e-3
    # The toy reads nothing beyond the corner (its 3x3 detail filter peeks one pixel into the neighbours).
    assert all(abs(r.occlusion_delta) < 1e-6 for r in ev.regions if r.row >= 2 or r.col >= 2)
    assert all(abs(r.occlusion_delta) < abs(ev.regions[0].occlusion_delta) for r in ev.regions[1:])
    assert len(ev.top) == 3
    d = ev.to_dict()
    assert d["top_regions"][0]["rank"] == 1 and d["top_regions"][0]["box"] == [0, 0, 8, 8]
    assert d["occlusion_grid"][0][0] == ev.regions[0].occlusion_delta


def test_detail_model_blur_lowers_the_score() -> None:
    det = CornerDetail(image_size=32).eval()
    ev = explain_image(det, real_crop(48, index=2), det.preprocess("png"), 0.5, autoencoder=None)
    assert ev.regions[0].occlusion_delta > 0  # the cell pushed toward "generated"


def test_bad_grid_is_refused() -> None:
    det = CornerBrightness(image_size=32).eval()
    with pytest.raises(ValueError):
        explain_image(det, real_crop(48), det.preprocess("png"), 0.5, grid=0, autoencoder=None)
    with pytest.raises(ValueError):
        explain_image(det, real_crop(48), det.preprocess("png"), 0.5, occlusion="paint", autoencoder=None)


@pytest.mark.parametrize("resize", [False, True])
def test_the_centre_region_with_a_given_score_explains_exactly_like_the_full_image(resize: bool) -> None:
    """The server keeps only the centre crop's pixels of an upload for its explanation (not 36 Mpx)."""
    from dataclasses import replace

    from gendet.data.preprocess import Preprocess
    from gendet.explain.evidence import centre_region
    from gendet.models import create_detector

    torch.manual_seed(0)
    det = create_detector("tiny_cnn").eval()
    pp = replace(Preprocess(size=32, resize=resize, crops=4), align="png")
    img = real_crop(120, index=1).resize((150, 100))
    full = explain_image(det, img, pp, 0.5, autoencoder=None)
    part = centre_region(img, pp)
    assert part.size == (32, 32)
    kept = explain_image(det, part, pp, 0.5, autoencoder=None, score=full.prob)
    assert kept.prob == full.prob and kept.text == full.text
    np.testing.assert_array_equal(np.asarray(kept.image), np.asarray(full.image))
    assert [r.box for r in kept.top_regions] == [r.box for r in full.top_regions]
    assert [r.occlusion_delta for r in kept.top_regions] == [r.occlusion_delta for r in full.top_regions]
