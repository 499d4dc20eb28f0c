"""Multi-scale retrospection: look back at an image by noising and regenerating it with a flow model.

For each scale s the image is resized to round(s * side) px (anti-aliased, so detail above that
scale is removed), then resized to the reconstructor's native size (its "view" u_s); u_s is noised
to flow time t with a per-image noise, and the flow ODE is integrated from t back to 0 with
`steps` Euler or Heun steps, giving r_s. The residual u_s - r_s is DIRE's signal at that scale:
images the model could have produced come back closer than photos do.

The reconstructor is one of gendet's own shipped generators (`gendet/assets/generators`), found
at run time and identified by the sha256 of its weights file; nothing is downloaded.

Determinism: the noise of (image, scale) is drawn from a generator seeded by the cache key, which
is a function of the image bytes, the scale, the settings and the reconstructor's sha256 only. So
the same image gives the same reconstruction in any batch, on any run, cached or not.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gendet.generation.pixel_flow import velocity_fn
from gendet.generation.registry import load_generator, shipped_generator_path
from gendet.lazy_import import file_sha256
from gendet.models.checkpoint import CheckpointError
from gendet.models.hrr.cache import ReconstructionCache, shared_cache

RECONSTRUCTORS = ("pixel_flow", "latent_flow")
SAMPLERS = ("euler", "heun")
RESIDUAL_REFERENCES = ("input", "view")


class ReconstructorMismatch(CheckpointError):
    """A checkpoint was trained on residuals of other reconstructor weights than the installed ones."""


def reconstructor_weights(name: str) -> tuple[str, str]:
    """(path, sha256) of a shipped reconstructor's weights; a clear error when it is not shipped."""
    if name not in RECONSTRUCTORS:
        raise ValueError(f"reconstructor must be one of {RECONSTRUCTORS}, got {name!r}")
    path = shipped_generator_path(name).with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"the shipped {name} weights are missing ({path}); reinstall gendet")
    return str(path), _sha256_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, mtime_ns: int) -> str:
    return file_sha256(path)


def check_reconstructor(name: str, expected_sha256: str | None) -> str:
    """The installed weights' sha256; raises ReconstructorMismatch when `expected_sha256` differs."""
    _, sha = reconstructor_weights(name)
    if expected_sha256 is not None and expected_sha256 != sha:
        raise ReconstructorMismatch(
            f"this checkpoint was trained on residuals of the {name} reconstructor with weights sha256 "
            f"{expected_sha256}, but the installed gendet ships {name} weights with sha256 {sha}. Its features "
            "would not mean what they meant in training: use the gendet version the checkpoint was made with, "
            "or retrain the detector."
        )
    return sha


class Reconstructor:
    """A shipped flow generator seen as x -> (space z, velocity field, decoder); frozen, float32."""

    def __init__(self, name: str) -> None:
        self.name = name
        path, self.sha256 = reconstructor_weights(name)
        self.generator = load_generator(path).eval().requires_grad_(False)
        c = self.generator.config
        self.native_size = int(c["image_size"])
        self.latent = name == "latent_flow"
        net = self.generator.flow if self.latent else self.generator.net
        self.velocity = velocity_fn(net, str(c["prediction"]))

    def to(self, device: torch.device) -> Reconstructor:
        self.generator.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def noise_shape(self) -> tuple[int, int, int]:
        if self.latent:
            s = self.native_size // self.generator.ae.factor
            return int(self.generator.config["z_ch"]), s, s
        return 3, self.native_size, self.native_size

    def encode(self, u: torch.Tensor) -> torch.Tensor:
        if not self.latent:
            return u
        g = self.generator
        return (g.ae.encode(u)[0] - g.latent_mean) / g.latent_std  # posterior mean, normalised as in training

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if not self.latent:
            return z
        g = self.generator
        return g.ae.decode(z * g.latent_std + g.latent_mean)

    @torch.no_grad()
    def reconstruct(self, u: torch.Tensor, eps: torch.Tensor, t: float, steps: int, sampler: str) -> torch.Tensor:
        """Noise u to flow time t (x_t = (1-t) z + t eps) and integrate back to t = 0."""
        z = self.encode(u)
        x = (1.0 - t) * z + t * eps
        ts = torch.linspace(t, 0.0, steps + 1).tolist()
        n = x.shape[0]
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            v = self.velocity(x, torch.full((n,), t_cur, device=x.device))
            x_next = x + (t_next - t_cur) * v
            if sampler == "heun" and t_next > 0:  # Heun's last step is Euler (no velocity at t = 0)
                v2 = self.velocity(x_next, torch.full((n,), t_next, device=x.device))
                x_next = x + (t_next - t_cur) * 0.5 * (v + v2)
            x = x_next
        return self.decode(x).clamp(-1.0, 1.0)


@functools.lru_cache(maxsize=4)
def load_reconstructor(name: str) -> Reconstructor:
    """One frozen instance per process and name (every HRR/DIRE detector shares it)."""
    return Reconstructor(name)


@dataclass(frozen=True)
class RetrospectionSettings:
    reconstructor: str = "pixel_flow"
    scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    t: float = 0.15
    steps: int = 2
    sampler: str = "euler"
    noise_seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"scales must be in (0, 1], got {list(self.scales)}")
        if not 0 < self.t <= 1:
            raise ValueError(f"t must be in (0, 1], got {self.t}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")

    def tag(self, sha256: str) -> str:
        """Everything but the scale and the image that decides a reconstruction (part of the cache key)."""
        return f"{self.reconstructor}:{sha256}|t={self.t!r}|steps={self.steps}|{self.sampler}|seed={self.noise_seed}"


def image_digest(x: torch.Tensor) -> str:
    """sha256 of one [-1, 1] image quantised to 8 bits (and its shape).

    Quantised, so float round-off (e.g. another mean/std normalisation undone) does not change the key
    and with it the noise; gendet's inputs are 8-bit images, so no two real inputs share a key."""
    q = x.detach().to("cpu", torch.float32).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).contiguous()
    h = hashlib.sha256(str(tuple(q.shape)).encode())
    h.update(q.numpy().tobytes())
    return h.hexdigest()


def cache_key(digest: str, scale: float, tag: str) -> str:
    return hashlib.sha256(f"{digest}|s={scale!r}|{tag}".encode()).hexdigest()


def scale_view(x: torch.Tensor, scale: float, native: int) -> torch.Tensor:
    """Resize to round(scale * side) (anti-aliased), then to the reconstructor's native size."""
    h, w = x.shape[-2:]
    small = (max(1, round(h * scale)), max(1, round(w * scale)))
    if small != (h, w):
        x = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
    if tuple(x.shape[-2:]) != (native, native):
        down = x.shape[-1] > native
        x = F.interpolate(x, size=(native, native), mode="bilinear", antialias=down, align_corners=False)
    return x


class Retrospection:
    """Views, reconstructions (cached, batched) and residuals of a batch at every scale."""

    def __init__(self, settings: RetrospectionSettings, expected_sha256: str | None = None,
                 cache: ReconstructionCache | None = None) -> None:
        self.settings = settings
        self.sha256 = check_reconstructor(settings.reconstructor, expected_sha256)
        self.tag = settings.tag(self.sha256)
        self._cache = cache
        self.forward_calls = 0  # reconstructor batches run (a cache hit runs none)

    @property
    def cache(self) -> ReconstructionCache:
        return self._cache if self._cache is not None else shared_cache()

    @property
    def reconstructor(self) -> Reconstructor:
        return load_reconstructor(self.settings.reconstructor)  # loaded on first use, not at build time

    @property
    def native_size(self) -> int:
        return self.reconstructor.native_size

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [scale_view(x, s, self.native_size) for s in self.settings.scales]

    def _noise(self, key: str, shape: Sequence[int]) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(key[:15], 16))  # seeded by content + settings
        return torch.randn(*shape, generator=g)

    def reconstructions(self, x: torch.Tensor, views: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """r_s for every scale, (B, 3, N, N) each, float16-exact, on x's device; misses are batched."""
        views = self.views(x) if views is None else views
        digests = [image_digest(xi) for xi in x]
        out: list[torch.Tensor] = []
        for scale, u in zip(self.settings.scales, views, strict=True):
            keys = [cache_key(d, scale, self.tag) for d in digests]
            found = [self.cache.get(k) for k in keys]
            missing = [i for i, f in enumerate(found) if f is None]
            for start in range(0, len(missing), self.settings.batch_size):
                idx = missing[start:start + self.settings.batch_size]
                for i, r in zip(idx, self._run(u[idx].detach(), [keys[i] for i in idx]), strict=True):
                    found[i] = self.cache.put(keys[i], r)
            assert all(f is not None for f in found)
            out.append(torch.stack(found).to(x.device, torch.float32))  # type: ignore[arg-type]
        return out

    def _run(self, u: torch.Tensor, keys: list[str]) -> torch.Tensor:
        rec = self.reconstructor
        device = u.device
        if rec.device != device:
            rec.to(device)
        eps = torch.stack([self._noise(k, rec.noise_shape()) for k in keys]).to(device)
        s = self.settings
        self.forward_calls += 1
        return rec.reconstruct(u.float(), eps, s.t, s.steps, s.sampler)

    def residuals(self, x: torch.Tensor, reference: str = "input") -> torch.Tensor:
        """Residuals stacked as (B, n_scales, 3, N, N); differentiable in x, not through the reconstructions.

        reference "input": x at the native size minus r_s (how each scale's regeneration differs from
        the input); "view": u_s - r_s (DIRE's residual within each scale's view)."""
        if reference not in RESIDUAL_REFERENCES:
            raise ValueError(f"residual reference must be one of {RESIDUAL_REFERENCES}, got {reference!r}")
        views = self.views(x)
        recons = self.reconstructions(x, views)
        full = scale_view(x, 1.0, self.native_size)
        refs = [full] * len(views) if reference == "input" else views
        return torch.stack([u - r for u, r in zip(refs, recons, strict=True)], dim=1)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"reconstructor": s.reconstructor, "sha256": self.sha256, "scales": list(s.scales), "t": s.t,
                "steps": s.steps, "sampler": s.sampler, "noise_seed": s.noise_seed}
