"""Cues move in the right direction against the real-photo reference; the autoencoder is found or skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from explain.toys import Constant, blurred, png_pp, real_crop, with_checkerboard
from gendet.explain import explain_image
from gendet.explain.cues import (
    find_autoencoder,
    measure_cues,
    real_reference,
    reconstruction_error_maps,
    reference_images,
    spectrum_cues,
)
from gendet.explain.evidence import UNUSUAL_Z
from gendet.generation.autoencoder import Autoencoder


class ZeroAE(nn.Module):
    """Reconstructs everything as 0 (mid-grey), so the L1 error is mean |x| in [-1, 1] units."""

    factor = 4

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % 4 == 0 and x.shape[-2] % 4 == 0
        return torch.zeros_like(x)


def _cues(img: Image.Image) -> dict[str, float]:
    whole, _ = measure_cues(np.asarray(img)[None], 4, None)
    return {k: float(v[0]) for k, v in whole.items()}


@pytest.fixture(scope="module")
def reference():
    return real_reference(png_pp(64), 4, None)


def test_reference_is_deterministic_and_centred(reference) -> None:
    assert reference.n_images >= 20 and set(reference.image) == {"hf_share", "spectral_peak", "noise_residual"}
    again = reference_images(png_pp(64))
    assert again.shape == (reference.n_images, 64, 64, 3)
    np.testing.assert_array_equal(again, reference_images(png_pp(64)))
    whole, _ = measure_cues(again, 4, None)
    zs = [reference.image["hf_share"].z(v) for v in whole["hf_share"]]
    assert abs(np.mean(zs)) < 1e-6 and np.std(zs, ddof=1) == pytest.approx(1.0, rel=1e-3)


def test_blur_lowers_high_frequency_energy(reference) -> None:
    img = real_crop(64, index=3)
    sharp, soft = _cues(img), _cues(blurred(img))
    assert soft["hf_share"] < sharp["hf_share"]
    assert soft["noise_residual"] < sharp["noise_residual"]
    z_soft = reference.image["hf_share"].z(soft["hf_share"])
    assert z_soft < reference.image["hf_share"].z(sharp["hf_share"]) and z_soft < -UNUSUAL_Z


def test_checkerboard_upsampling_shows_a_spectral_peak(reference) -> None:
    img = real_crop(64, index=3)
    plain, board = _cues(img), _cues(with_checkerboard(img))
    assert board["spectral_peak"] > 2 * plain["spectral_peak"]
    assert reference.image["spectral_peak"].z(board["spectral_peak"]) > UNUSUAL_Z
    # the peak is at Nyquist (the corner of the spectrum), where the checkerboard puts it
    gray = np.asarray(with_checkerboard(img).convert("L"), dtype=np.float64)
    mag = np.abs(np.fft.fft2(gray - gray.mean()))
    assert np.unravel_index(mag[1:, 1:].argmax(), (63, 63)) == (31, 31)


def test_spectrum_cues_are_batched() -> None:
    gray = np.random.default_rng(0).normal(size=(3, 5, 16, 16))
    hf, peak = spectrum_cues(gray)
    assert hf.shape == (3, 5) == peak.shape and ((hf > 0) & (hf < 1)).all() and (peak >= 1).all()


def test_reconstruction_error_any_size() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 30, 34, 3), dtype=np.uint8)
    err = reconstruction_error_maps(ZeroAE(), rgb)
    assert err.shape == (2, 30, 34)
    np.testing.assert_allclose(err, np.abs(rgb / 127.5 - 1.0).mean(axis=-1), atol=1e-5)


def test_find_autoencoder_prefers_the_detector_s_own() -> None:
    det = Constant(image_size=32)
    ae, source = find_autoencoder(det)
    assert isinstance(ae, Autoencoder) and source == "shipped latent_flow"
    own = ZeroAE()
    det.autoencoder = own
    assert find_autoencoder(det) == (own, "detector")
    del det.autoencoder
    det.autoencoder = lambda: own  # a method returning one works too
    assert find_autoencoder(det)[0] is own


def test_recon_cue_measured_or_skipped_with_a_reason() -> None:
    det = Constant(image_size=32).eval()
    img = real_crop(48)
    ev = explain_image(det, img, det.preprocess("png"), 0.5)
    assert ev.autoencoder == "shipped latent_flow" and ev.cues["recon_error"]["z"] is not None
    assert all("recon_error" in r.cues for r in ev.regions)
    skipped = explain_image(det, img, det.preprocess("png"), 0.5, autoencoder=None)
    assert "recon_error" not in skipped.cues and skipped.autoencoder is None
    assert any("recon_error skipped" in n for n in skipped.to_dict()["notes"])
    assert "reconstruction error was not measured" in skipped.text
