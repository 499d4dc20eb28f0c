"""Relevance maps: the gradient path for ordinary detectors, the detector's own maps when it has them."""

from __future__ import annotations

import numpy as np
import torch

from explain.toys import CornerBrightness, WithAttention, flat_image, real_crop
from gendet.explain import explain_image
from gendet.explain.relevance import ATTENTION, GRADIENT, normalise_maps, relevance_maps
from gendet.models.registry import create_detector


def test_gradient_map_shape_range_and_no_parameter_grads() -> None:
    torch.manual_seed(0)
    det = create_detector("tiny_cnn").eval()
    x = torch.randn(2, 3, 32, 32)
    maps, source = relevance_maps(det, x)
    assert source == GRADIENT
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    assert maps.std() > 0.01  # a real map, not a constant
    assert all(p.grad is None for p in det.parameters())  # explaining must not touch training state


def test_gradient_map_follows_what_the_model_reads() -> None:
    det = CornerBrightness(image_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    maps, _ = relevance_maps(det, x)
    corner, rest = maps[0, :8, :8].mean(), maps[0, 12:, 12:].mean()
    assert corner > 10 * max(rest, 1e-6)


def test_gradient_path_for_resnet_spec_and_npr() -> None:
    for name in ("resnet50", "spec", "npr"):
        det = create_detector(name, **create_detector(name).small_config).eval()
        size = det.config["image_size"]
        maps, source = relevance_maps(det, torch.randn(1, 3, size, size))
        assert source == GRADIENT and maps.shape == (1, size, size) and np.isfinite(maps).all()


def test_detector_relevance_method_is_used_and_upsampled() -> None:
    det = WithAttention(image_size=32).eval()
    ev = explain_image(det, real_crop(48), det.preprocess("png"), 0.5, autoencoder=None)
    assert ev.relevance_source == ATTENTION
    assert ev.relevance.shape == (32, 32) and ev.relevance.max() == 1.0
    shares = [r.relevance_share for r in ev.regions]
    assert int(np.argmax(shares)) == 15 and shares[15] > shares[0] > shares[5]
    assert ev.model_text == "smooth skin texture"
    assert ev.to_dict()["model_text"] == "smooth skin texture" and "smooth skin" not in ev.text


def test_detector_declining_relevance_falls_back_to_gradient() -> None:
    det = WithAttention(image_size=32, declines=True).eval()
    ev = explain_image(det, flat_image(40), det.preprocess("png"), 0.5, autoencoder=None)
    assert ev.relevance_source == GRADIENT


def test_normalise_all_zero_map_stays_zero() -> None:
    out = normalise_maps(torch.zeros(1, 4, 4), (8, 8))
    assert out.shape == (1, 8, 8) and not out.any()
