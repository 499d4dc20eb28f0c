"""The inputs NPR and Spec compute inside the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gendet.models.npr import npr_residual
from gendet.models.spec import log_spectrum

from .helpers import small_detector


def test_npr_residual_vanishes_on_nearest_upsampled_images() -> None:
    low = torch.randn(2, 3, 16, 16)
    up = F.interpolate(low, scale_factor=2, mode="nearest")
    assert torch.count_nonzero(npr_residual(up)) == 0
    x = torch.randn(2, 3, 32, 32)
    r = npr_residual(x)
    # each pixel minus the top-left pixel of its 2x2 block
    ref = x - x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    torch.testing.assert_close(r, ref)
    assert torch.count_nonzero(r[..., ::2, ::2]) == 0


def test_npr_residual_crops_odd_sizes() -> None:
    assert npr_residual(torch.randn(1, 3, 33, 31)).shape == (1, 3, 32, 30)


def test_npr_separates_upsampled_from_natural_inputs() -> None:
    det = small_detector("npr").eval()
    up = F.interpolate(torch.randn(1, 3, 16, 16), scale_factor=2, mode="nearest")
    with torch.no_grad():
        # a zero residual gives one fixed feature vector whatever the content
        f1 = det.features(up)
        f2 = det.features(up * 3 + 1)
    torch.testing.assert_close(f1, f2)


def test_log_spectrum_shape_and_normalisation() -> None:
    x = torch.randn(2, 3, 32, 32)
    s = log_spectrum(x, "rgb")
    assert s.shape == (2, 3, 32, 32)
    torch.testing.assert_close(s.mean(dim=(-2, -1)), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.std(dim=(-2, -1)), torch.ones(2, 3), atol=1e-4, rtol=0)
    assert log_spectrum(x, "gray").shape == (2, 1, 32, 32)
    # global contrast/brightness scaling does not change the standardised log spectrum
    torch.testing.assert_close(log_spectrum(x * 5.0, "rgb"), s, atol=2e-3, rtol=0)


def test_log_spectrum_shows_periodic_pattern_peak() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    pattern = torch.cos(xx * torch.pi / 2).expand(1, 1, 32, 32)  # period 4 along x
    base = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    s_base = log_spectrum(base, "gray")[0, 0]
    s_pat = log_spectrum(base + 2 * pattern, "gray")[0, 0]
    # fftshift puts frequency 0 at index 16; period 4 -> +-8 bins along x
    assert s_pat[16, 24] - s_base[16, 24] > 1.0
    assert s_pat[16, 8] - s_base[16, 8] > 1.0


def test_spec_accepts_a_timm_body_and_names_it() -> None:
    import pytest
    import torch

    from gendet.models import create_detector

    det = create_detector("spec", image_size=32, arch="regnetx_002")
    assert det.variant == "spec[arch=regnetx_002]" and det.num_parameters < 3_000_000
    out = det({"image": torch.randn(2, 3, 32, 32)})
    assert out["logit"].shape == (2,)
    with pytest.raises(ValueError, match="timm architecture"):
        create_detector("spec", arch="no_such_net")
