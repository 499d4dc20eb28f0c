"""The probe feature cache: keyed by content, view and backbone; a second pass computes nothing."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np

from gendet.data.layouts import read_samples
from gendet.evaluation.feature_cache import FeatureCache, View, model_key, sample_digests, view_features
from gendet.models import create_detector

SMALL = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False}


def _setup(genuine_manifest, tmp_path):
    samples = read_samples(genuine_manifest)[:10]
    det = create_detector("probe", **SMALL)
    return samples, det, FeatureCache(tmp_path / "cache", model_key(det))


def test_second_pass_is_all_cache_hits_and_identical(genuine_manifest, tmp_path) -> None:
    samples, det, cache = _setup(genuine_manifest, tmp_path)
    view = View("grid", det.preprocess())
    digests = sample_digests(samples)
    first = view_features(det, samples, digests, view, cache, progress=False)
    assert first.computed == len(samples) and first.cached == 0
    assert all(f.shape == (4, det.backbone.feature_dim) for f in first.feats)
    again = view_features(det, samples, digests, view, cache, progress=False)
    assert again.computed == 0 and again.cached == len(samples)
    for a, b in zip(first.feats, again.feats, strict=True):
        np.testing.assert_array_equal(a, b)
    # the cached features are what the model computes on the same input
    x = view.transform()(__import__("gendet.data.decode", fromlist=["x"]).decode_image(samples[0].path),
                         view.rng(digests[0]))
    np.testing.assert_allclose(det.backbone_features(x).numpy(), first.feats[0], rtol=1e-5, atol=1e-5)


def test_key_is_content_not_path(genuine_manifest, tmp_path) -> None:
    samples, det, cache = _setup(genuine_manifest, tmp_path)
    view = View("centre", replace(det.preprocess(), crops=1))
    view_features(det, samples[:1], sample_digests(samples[:1]), view, cache, progress=False)
    copy = tmp_path / "renamed.jpg"
    shutil.copy(samples[0].path, copy)
    moved = [replace(samples[0], path=copy)]
    assert view_features(det, moved, sample_digests(moved), view, cache, progress=False).cached == 1


def test_views_and_backbones_do_not_share_entries(genuine_manifest, tmp_path) -> None:
    samples, det, cache = _setup(genuine_manifest, tmp_path)
    pp = replace(det.preprocess(), crops=1)
    a, b = View("a", pp), View("b", pp, degradation="jpeg_30")
    t0, t1 = View("t", pp, train=True, draw=0), View("t", pp, train=True, draw=1)
    assert len({a.key(), b.key(), t0.key(), t1.key()}) == 4
    assert View("renamed", pp).key() == a.key()  # the name is a label, not part of the definition
    other = create_detector("probe", **{**SMALL, "taps": [2]})
    assert model_key(other) != model_key(det)


def test_unreadable_file_is_reported_and_the_rest_kept(genuine_manifest, tmp_path) -> None:
    samples, det, cache = _setup(genuine_manifest, tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    mixed = [*samples[:3], replace(samples[0], path=broken)]
    got = view_features(det, mixed, sample_digests(mixed), View("c", det.preprocess()), cache, progress=False)
    assert got.feats[3] is None and str(broken) in got.errors
    assert all(f is not None for f in got.feats[:3])
