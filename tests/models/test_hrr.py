"""HRR: retrospection (determinism, cache, shapes), the correntropy sparse additive refinement, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gendet.lazy_import import file_sha256
from gendet.models import create_detector
from gendet.models.checkpoint import CONFIG_FILE, CheckpointError, load_checkpoint, save_checkpoint
from gendet.models.hrr.cache import ReconstructionCache
from gendet.models.hrr.refinement import AdditiveRefiner, margin_residual, robust_loss, squared_loss, welsch_loss
from gendet.models.hrr.retrospection import (
    ReconstructorMismatch,
    Retrospection,
    RetrospectionSettings,
    reconstructor_weights,
    scale_view,
)

from .helpers import small_detector

SETTINGS = RetrospectionSettings(scales=(1.0, 0.5, 0.25), t=0.2, steps=1, batch_size=3)


def images(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_reconstruction_is_deterministic_and_cached() -> None:
    retro = Retrospection(SETTINGS, cache=ReconstructionCache())
    x = images()
    first = retro.reconstructions(x)
    calls = retro.forward_calls
    assert calls == 3 * 2  # 3 scales x ceil(4 images / batch 3)
    again = retro.reconstructions(x)
    assert retro.forward_calls == calls, "a cached image must not run the reconstructor again"
    assert retro.cache.stats.hits == 3 * 4
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    # a fresh cache, other batch composition: the noise depends on the image, not on its batch
    # (equal up to float16 rounding of a batch-size-dependent kernel's last bit)
    fresh = Retrospection(SETTINGS, cache=ReconstructionCache())
    alone = fresh.reconstructions(x[2:3])
    for a, b in zip(first, alone, strict=True):
        torch.testing.assert_close(a[2:3], b, atol=1e-3, rtol=0)
    assert not torch.equal(fresh.reconstructions(x[3:4])[0], alone[0])
    other_t = Retrospection(RetrospectionSettings(scales=(1.0,), t=0.5, steps=1), cache=retro.cache)
    assert not torch.equal(other_t.reconstructions(x[:1])[0], first[0][:1])  # t is part of the key


def test_disk_cache_survives_a_new_process_cache(tmp_path) -> None:
    x = images(2)
    one = Retrospection(SETTINGS, cache=ReconstructionCache(disk_dir=tmp_path))
    ref = one.reconstructions(x)
    two = Retrospection(SETTINGS, cache=ReconstructionCache(disk_dir=tmp_path))
    got = two.reconstructions(x)
    assert two.forward_calls == 0 and two.cache.stats.disk_hits == 3 * 2
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))


def test_memory_cache_is_bounded() -> None:
    cache = ReconstructionCache(max_bytes=3 * 2 * 8 * 8 * 2)  # two float16 (3, 8, 8) entries
    for i in range(4):
        cache.put(str(i), torch.full((3, 8, 8), float(i)))
    assert len(cache) == 2 and cache.get("0") is None and cache.get("3") is not None


@pytest.mark.parametrize("size", [32, 48, 64, 96])
def test_residual_shapes_per_scale(size: int) -> None:
    retro = Retrospection(SETTINGS, cache=ReconstructionCache())
    x = images(2, size)
    res = retro.residuals(x)
    assert res.shape == (2, 3, 3, 64, 64)  # every scale at the reconstructor's native size
    assert torch.isfinite(res).all()
    # a smaller scale removes detail: its view is smoother than the full-scale one
    v1, v4 = (scale_view(x, s, 64) for s in (1.0, 0.25))
    tv = [(v[..., 1:] - v[..., :-1]).abs().mean() for v in (v1, v4)]
    assert tv[1] < tv[0]


def test_welsch_values_and_bounded_influence() -> None:
    e = torch.tensor([0.0, 1.0, 3.0, 30.0])
    w = welsch_loss(e, sigma=1.0)
    assert w[0] == 0 and math.isclose(w[1].item(), 1 - math.exp(-0.5), rel_tol=1e-6)
    assert w.max() <= 1.0 and math.isclose(w[3].item(), 1.0, rel_tol=1e-6)  # bounded by sigma^2
    small = torch.tensor(1e-2)
    assert math.isclose(welsch_loss(small, 1.0).item(), squared_loss(small).item(), rel_tol=1e-3)
    # an outlier's gradient: Welsch's influence vanishes, the squared loss's grows
    for loss, expected in ((lambda r: welsch_loss(r, 1.0), 3 * math.exp(-4.5)), (squared_loss, 3.0)):
        r = torch.tensor(3.0, requires_grad=True)
        loss(r).backward()
        assert math.isclose(r.grad.item(), expected, rel_tol=1e-5)
    assert margin_residual(torch.tensor([1.0, -1.0]), torch.tensor([1, 1])).tolist() == [0.0, 2.0]


def _fit_toy(lam: float) -> AdditiveRefiner:
    torch.manual_seed(0)
    z = torch.randn(256, 6)
    y = (z[:, 0] + 0.5 * z[:, 1] ** 2 > 0.5).long()  # components 2..5 are useless
    torch.manual_seed(1)
    model = AdditiveRefiner(6, n_basis=6)
    steps = 150
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)  # the trainer decays too (cosine)
    for _ in range(steps):
        f, kl = model(z)
        loss = robust_loss(margin_residual(f, y), "welsch").mean() + lam * model.penalty() + 1e-3 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    model.eval()
    f, _ = model(z)
    assert ((f > 0).long() == y).float().mean() > 0.8  # it still classifies with what it kept
    return model


def test_group_sparsity_drops_useless_components() -> None:
    assert _fit_toy(0.0).kept_mask().all()  # without the penalty nothing is dropped
    sparse = _fit_toy(2e-2)
    assert sparse.kept_mask().tolist() == [True, True, False, False, False, False]
    report = sparse.report([f"c{i}" for i in range(6)])
    assert report["kept"] == ["c0", "c1"] and report["n_kept"] == 2


def test_kl_is_zero_at_the_prior_and_positive_otherwise() -> None:
    model = AdditiveRefiner(4).eval()
    z = torch.randn(16, 4)
    assert model(z)[1] > 0
    with torch.no_grad():
        model.gate.zero_()
        model.log_var.zero_()
    assert model(z)[1].abs() < 1e-6


def _toy_batch(n: int = 16, size: int = 32) -> dict[str, torch.Tensor]:
    """Real = smooth gradients, fake = white noise: their reconstruction residuals differ at every scale."""
    g = torch.Generator().manual_seed(5)
    ramp = torch.linspace(-0.8, 0.8, size)
    real = (ramp.view(1, 1, 1, -1) * torch.rand(n // 2, 3, 1, 1, generator=g)).expand(-1, -1, size, -1)
    fake = torch.rand(n // 2, 3, size, size, generator=g) * 2 - 1
    x = torch.cat([real, fake]).contiguous()
    return {"image": x, "label": torch.tensor([0] * (n // 2) + [1] * (n // 2))}


@pytest.mark.parametrize("name", ["hrr", "dire"])
def test_trains_on_a_separable_toy(name: str) -> None:
    torch.manual_seed(0)
    det = small_detector(name)
    batch = _toy_batch()
    out = det(batch)
    assert out["logit"].shape == (16,) and out["features"].shape[1] == det.fusion.n_components
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = det.loss(batch, det(batch))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_normalisation_is_undone_before_reconstruction() -> None:
    a = small_detector("hrr")
    b = small_detector("hrr", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    x01 = (images(2) + 1) / 2
    xa = (x01 - 0.5) / 0.5
    xb = (x01 - torch.tensor(b.config["mean"]).view(1, 3, 1, 1)) / torch.tensor(b.config["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(a.residuals(xa), b.residuals(xb), atol=1e-5, rtol=0)


def test_checkpoint_records_the_reconstructor_and_refuses_another(tmp_path) -> None:
    det = small_detector("hrr")
    path, sha = reconstructor_weights("pixel_flow")
    assert sha == file_sha256(path)
    save_checkpoint(tmp_path, det, {})
    cfg = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert cfg["model_config"]["reconstructor"] == "pixel_flow"
    assert cfg["model_config"]["reconstructor_sha256"] == sha
    load_checkpoint(tmp_path)  # the installed weights match
    cfg["model_config"]["reconstructor_sha256"] = "0" * 64
    (tmp_path / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ReconstructorMismatch, match="sha256 0000") as e:
        load_checkpoint(tmp_path)
    assert isinstance(e.value, CheckpointError) and sha in str(e.value)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="scales"):
        create_detector("hrr", scales=[2.0])
    with pytest.raises(ValueError, match="refine_loss"):
        create_detector("hrr", refine_loss="huber")
    with pytest.raises(ValueError, match="reconstructor"):
        create_detector("hrr", reconstructor="dcgan")


def test_latent_flow_reconstructor_option() -> None:
    settings = RetrospectionSettings(reconstructor="latent_flow", scales=(1.0, 0.5), t=0.3, steps=1)
    retro = Retrospection(settings, cache=ReconstructionCache())
    x = images(2)
    res = retro.residuals(x)
    assert res.shape == (2, 2, 3, 64, 64) and torch.isfinite(res).all()
    assert retro.describe()["sha256"] == reconstructor_weights("latent_flow")[1]
    torch.testing.assert_close(retro.residuals(x), res, atol=0, rtol=0)  # second call: cached, identical
