"""probe and lite: frozen parts stay frozen, the head fit, multi-crop scoring through Detector.__call__."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gendet.data.preprocess import ImageTransform, Preprocess, plan_crop_grid
from gendet.models import create_detector

SMALL = {"image_size": 32, "crops": 1, "taps": [1], "pretrained": False}


def test_probe_backbone_is_frozen_and_only_the_head_trains() -> None:
    d = create_detector("probe", **SMALL)
    trainable = {n for n, p in d.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    d.train()
    assert not d.backbone.training  # BatchNorm statistics stay ImageNet's


def test_lite_freezes_the_first_stages_only() -> None:
    d = create_detector("lite", image_size=32, crops=1, pretrained=False, freeze=3)
    frozen = [n for n, p in d.named_parameters() if not p.requires_grad]
    assert any(n.startswith("backbone.net.blocks.2.") for n in frozen)
    assert not any(n.startswith("backbone.net.blocks.3.") for n in frozen)
    assert all(p.requires_grad for n, p in d.named_parameters() if n.startswith("fc."))
    d.train()
    assert not d.backbone.net.blocks[0].training and d.backbone.net.blocks[4].training
    with pytest.raises(ValueError, match="freeze"):
        create_detector("lite", pretrained=False, freeze=99)


def test_pretrained_probe_records_the_backbone_digest() -> None:
    d = create_detector("probe", image_size=32, crops=1)
    assert d.config["backbone"] == "lite2" and d.config["backbone_sha256"].startswith("9656183e")


def test_fit_head_separates_linearly_separable_features() -> None:
    d = create_detector("probe", **SMALL)
    rng = np.random.default_rng(0)
    dim = d.backbone.feature_dim
    x = rng.normal(size=(60, dim))
    y = np.array([0, 1] * 30)
    x[y == 1, 0] += 4.0
    d.fit_head(x, y)
    logits = d.head_logits(x)
    assert ((logits > 0) == (y == 1)).mean() > 0.95
    # head_logits on (N, crops, D) is the mean logit over crops
    both = d.head_logits(np.stack([x, x], axis=1))
    np.testing.assert_allclose(both, logits, rtol=1e-5)
    with pytest.raises(ValueError, match="both classes"):
        d.fit_head(x, np.zeros(60))


def test_multicrop_batch_scores_the_mean_logit_of_its_crops() -> None:
    d = create_detector("probe", **SMALL).eval()
    torch.nn.init.normal_(d.fc.weight)
    x = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        out = d({"image": x})
        per_crop = torch.stack([d({"image": x[:, k]})["logit"] for k in range(4)], dim=1)
    torch.testing.assert_close(out["logit"], per_crop.mean(dim=1))
    torch.testing.assert_close(out["prob"], torch.sigmoid(per_crop.mean(dim=1)))
    d.CROP_CHUNK = 5  # chunked forwards (peak memory bound) give the same scores
    with torch.no_grad():
        torch.testing.assert_close(d({"image": x})["logit"], out["logit"])


def test_crop_grid_covers_the_image_corners() -> None:
    pp = Preprocess(size=32, resize=False, crops=4)
    boxes = [p.box for p in plan_crop_grid((80, 50), pp)]
    assert boxes == [(0, 0, 32, 32), (48, 0, 80, 32), (0, 18, 32, 50), (48, 18, 80, 50)]
    from PIL import Image

    img = Image.new("RGB", (80, 50))
    assert ImageTransform(pp)(img, np.random.default_rng(0)).shape == (4, 3, 32, 32)
    assert ImageTransform(pp, train=True)(img, np.random.default_rng(0)).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="square"):
        Preprocess(crops=3)


def test_varied_scale_training_crops_downscale_a_larger_square() -> None:
    from PIL import Image

    pp = Preprocess(size=32, resize=False, train_crop_scale=(0.5, 0.5))
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[:, ::2] = 255  # a 1-px stripe pattern: a 2x downscale averages it to grey
    out = ImageTransform(pp, train=True).prepare(Image.fromarray(arr), np.random.default_rng(0))
    assert out.size == (32, 32)
    assert 60 < np.asarray(out).mean() < 200 and np.asarray(out).std() < 60
