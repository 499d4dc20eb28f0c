"""The detectors on frozen pretrained parts (unigendet_lite, gamma_lite, hrr_lite, dire_lite): frozen parts stay
frozen, heads train on cached features, cache keys follow the frozen weights, the mechanisms' switches act."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gendet.generation.autoencoder import Autoencoder
from gendet.models import create_detector
from gendet.models.backbones import create_backbone

from .helpers import small_detector

NAMES = ("unigendet_lite", "gamma_lite", "hrr_lite", "dire_lite")


def _features(det, n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    s = int(det.config["image_size"])
    x = torch.rand(n, 3, s, s, generator=g) * 2 - 1
    with torch.no_grad():
        f = det.backbone_features(x).numpy()
    return f, np.array([0, 1] * (n // 2))


def test_tokens_pool_the_same_features_as_the_global_pool() -> None:
    bb = create_backbone("lite0", taps=(1, 3), load_weights=False).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens, pooled = bb.tokens(x, 2), bb(x)
    assert tokens.shape == (2, 4, bb.feature_dim)
    assert torch.allclose(tokens.mean(dim=1), pooled, atol=1e-5)  # every map side here is divisible by 2


@pytest.mark.parametrize("name", NAMES)
def test_fit_head_leaves_the_frozen_parts_untouched(name: str) -> None:
    det = small_detector(name)
    frozen = {k: v.clone() for k, v in det.state_dict().items() if det._is_frozen(k)}
    assert frozen and not any(p.requires_grad for k, p in det.named_parameters() if det._is_frozen(k))
    feats, y = _features(det)
    det.fit_head(feats, y, seed=0)
    assert all(torch.equal(frozen[k], v) for k, v in det.state_dict().items() if k in frozen)
    det.train()
    assert not det.backbone.training  # BatchNorm statistics stay ImageNet's
    state = det.head_state()
    assert state and not any(det._is_frozen(k) for k in state)
    scores = det.head_logits(feats[:4])
    det.fit_head(feats, 1 - y, seed=1)
    det.load_head_state(state)
    np.testing.assert_allclose(det.head_logits(feats[:4]), scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="head state mismatch"):
        det.load_head_state({k: v for k, v in list(state.items())[1:]})


@pytest.mark.parametrize("name", NAMES)
def test_cached_features_score_like_the_image_path(name: str) -> None:
    det = small_detector(name).eval()
    feats, y = _features(det, n=8)
    det.fit_head(feats, y, seed=0)
    s = int(det.config["image_size"])
    x = torch.rand(8, 3, s, s, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        direct = det({"image": x})["logit"].numpy()
    np.testing.assert_allclose(det.head_logits(feats), direct, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ("unigendet_lite", "hrr_lite"))
def test_the_autoencoder_is_adopted_strictly_and_names_the_cache(name: str) -> None:
    det = small_detector(name)
    key = det.feature_key()
    ae = Autoencoder(tuple(det.config["ae_channels"]), 4, 1, kl=True)
    det.adopt_autoencoder(ae, torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))
    assert det.feature_key() != key and det.config["autoencoder_sha256"]
    assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), det.autoencoder.state_dict().values(),
                                                 strict=True))
    with pytest.raises(RuntimeError):
        det.adopt_autoencoder(Autoencoder((8, 8, 8), 4, 1, kl=True), torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))


def test_pretrained_backbone_weights_are_the_packaged_ones() -> None:
    det = create_detector("unigendet_lite")
    assert det.config["backbone_sha256"] == det.backbone.weights_sha256 and len(det.config["backbone_sha256"]) > 10


def test_gduf_trains_the_generation_side_and_detection_alone_does_not() -> None:
    joint = small_detector("unigendet_lite", gduf=True)
    alone = small_detector("unigendet_lite", gduf=False)
    feats, y = _features(joint)
    joint.fit_head(feats, y, seed=0)
    alone.fit_head(feats, y, seed=0)
    assert joint.flow_out.weight.abs().sum() > 0 and alone.flow_out.weight.abs().sum() == 0  # zero-initialised


def test_diga_trains_only_the_generation_side_and_aligns() -> None:
    det = small_detector("unigendet_lite", diga_steps=3)
    feats, y = _features(det)
    det.fit_head(feats, y, seed=0)
    teacher = det.frozen_copy()
    vis, z = det.split(torch.from_numpy(feats))
    gen = {id(p) for p in det.generation_parameters()}
    fixed = {k: p.detach().clone() for k, p in det.named_parameters() if id(p) not in gen}
    det.fit_generator(z, seed=0, teacher=teacher, real_vision=vis)
    assert all(torch.equal(fixed[k], p) for k, p in det.named_parameters() if k in fixed)
    assert det.generate(2, seed=0).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="vision tokens"):
        det.fit_generator(z, seed=0, teacher=teacher, real_vision=vis[:2])


def test_smsa_off_drops_the_latent_tokens() -> None:
    on, off = small_detector("unigendet_lite"), small_detector("unigendet_lite", smsa=False)
    feats, _ = _features(on, n=2)
    vis, z = on.split(torch.from_numpy(feats))
    n_on = on.detection_outputs(vis, z, keep_layers=(1,))["layers"][1].shape[1]
    n_off = off.detection_outputs(vis, z, keep_layers=(1,))["layers"][1].shape[1]
    assert n_on - n_off == on.latent_grid ** 2


def test_gamma_region_targets_change_the_fit() -> None:
    det = small_detector("gamma_lite", steps=8)
    feats, y = _features(det)
    shares = np.zeros((len(y), det.n_tokens, 3), dtype=np.float32)
    shares[:, :, 0] = 1.0
    shares[y == 1, 0] = [0.0, 1.0, 0.0]  # only the first region of a generated image is generated
    det.fit_head(feats, y, seed=0, region_sources=shares)
    a = det.region_mask(feats)
    det.fit_head(feats, y, seed=0)  # regions from the label: all of a generated image
    assert not np.allclose(a, det.region_mask(feats))
    with pytest.raises(ValueError, match="region_sources"):
        det.fit_head(feats, y, seed=0, region_sources=shares[:, :1])


def test_hrr_refinement_keeps_a_subset_and_dire_is_one_scale() -> None:
    hrr, dire = small_detector("hrr_lite", steps=20), small_detector("dire_lite")
    assert hrr.n_components == 3 * dire.n_components
    feats, y = _features(hrr)
    hrr.fit_head(feats, y, seed=0)
    assert 0 < hrr.fit_info["n_kept"] <= hrr.n_components
    with pytest.raises(ValueError, match="scales"):
        create_detector("hrr_lite", **{**small_detector("hrr_lite").config, "scales": [2.0]})
