"""Shared fixtures: the shared real photos and small synthetic data sets built from them.

Fakes here are *synthetic stand-ins* with generator-like traces (nearest-neighbour
up-sampling grids, periodic patterns, over-smoothing), not outputs of a trained
generator: they exist so tests can check plumbing and that learning happens.
The local benchmark (gendet.generation) provides real generators.
"""

from __future__ import annotations

import os

# As gendet/__init__.py does, but before any test module imports torch: spinning OpenMP
# threads starve each other on small CPUs (one HRR test: 42 s spinning vs 1 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools  # noqa: E402
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


def real_photo_paths() -> list[Path]:
    paths = sorted(SHARED_REAL.glob("*.jpg"))
    if not paths:
        pytest.skip(f"shared real photos not found at {SHARED_REAL}")
    return paths


@functools.lru_cache(maxsize=64)
def _downscaled_photo(path: Path, size: int) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (size * 8, size * 8))  # fast JPEG DCT-domain downscale
        return im.convert("RGB")


def _photo_crops(n: int, size: int, seed: int) -> list[Image.Image]:
    """n crops from the shared photos (downscaled first so crops hold scene content)."""
    rng = np.random.default_rng(seed)
    photos = real_photo_paths()
    crops = []
    for i in range(n):
        im = _downscaled_photo(photos[i % len(photos)], size)
        scale = (size * 4) / min(im.size)
        im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))))
        x = int(rng.integers(0, im.width - size + 1))
        y = int(rng.integers(0, im.height - size + 1))
        crops.append(im.crop((x, y, x + size, y + size)))
    return crops


def fake_from(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """A generator-like image derived from a real crop (see module docstring)."""
    w, h = img.size
    if kind == "gen_a":  # transposed-conv style: low-res content, nearest up-sampling grid
        small = img.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
        arr = np.asarray(small.resize((w, h), Image.Resampling.NEAREST), dtype=np.float32)
        arr += rng.normal(0, 4, arr.shape)
    elif kind == "gen_b":  # over-smooth decoder with a faint periodic pattern
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        arr += 6.0 * np.sin(xx * np.pi / 2)[..., None] * np.cos(yy * np.pi / 2)[..., None]
    else:
        raise ValueError(kind)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_genimage_tree(
    root: Path,
    generators: tuple[str, ...] = ("gen_a", "gen_b"),
    n_train: int = 12,
    n_val: int = 8,
    size: int = 48,
    seed: int = 0,
) -> Path:
    """GenImage layout `<root>/<gen>/{train,val}/{ai,nature}`.

    Reals are JPEG of varied size and fakes PNG of fixed size, on purpose: this
    reproduces GenImage's format flaw so alignment can be tested against it.
    """
    rng = np.random.default_rng(seed)
    for g_i, gen in enumerate(generators):
        for s_i, split in enumerate(("train", "val")):
            n = n_train if split == "train" else n_val
            crops = _photo_crops(2 * n, size + 16, seed=seed * 100 + g_i * 10 + s_i)
            nat, ai = root / gen / split / "nature", root / gen / split / "ai"
            nat.mkdir(parents=True, exist_ok=True)
            ai.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                real = crops[i]
                extra = int(rng.integers(0, 17))
                real = real.resize((size + extra, size + extra))
                real.save(nat / f"real_{i:03d}.JPEG", quality=int(rng.integers(75, 96)))
                fake = fake_from(crops[n + i].resize((size, size)), gen, rng)
                fake.save(ai / f"fake_{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def real_dir() -> Path:
    real_photo_paths()
    return SHARED_REAL


@pytest.fixture(scope="session")
def genimage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small two-generator GenImage-layout tree (read-only: do not modify in tests)."""
    return make_genimage_tree(tmp_path_factory.mktemp("genimage"))


@pytest.fixture
def make_genimage() -> Callable[..., Path]:
    return make_genimage_tree


def make_genuine_manifest(root: Path, groups: tuple[str, ...] = ("gen_a", "gen_b", "gen_c"), n_fake: int = 8,
                          n_real: int = 30, size: int = 48, seed: int = 0) -> Path:
    """A small manifest in the genuine set's shape (path,label,split,generator,group,source_set,...):
    three generator groups, two real source sets, two edited photos; returns the manifest path."""
    import csv

    rng = np.random.default_rng(seed)
    crops = _photo_crops(n_real + n_fake * len(groups) + 2, size + 8, seed=seed)
    rows = []
    (root / "real").mkdir(parents=True, exist_ok=True)
    for i in range(n_real):
        p = root / "real" / f"r{i:03d}.jpg"
        crops[i].save(p, quality=90)
        rows.append({"path": f"real/{p.name}", "label": 0, "split": "val" if i % 3 == 0 else "train", "generator": "",
                     "group": f"r{i // 2}", "source_set": "set_a" if i % 2 else "set_b", "origin": "test",
                     "license": "CC0"})
    k = n_real
    for g in groups:
        (root / g).mkdir(exist_ok=True)
        kind = "gen_a" if g != "gen_b" else "gen_b"
        for i in range(n_fake):
            p = root / g / f"f{i:03d}.png"
            fake_from(crops[k].resize((size, size)), kind, rng).save(p)
            k += 1
            rows.append({"path": f"{g}/{p.name}", "label": 1, "split": "val" if i % 4 == 0 else "train",
                         "generator": g, "group": f"{g}{i}", "source_set": "", "origin": "test", "license": "MIT"})
    (root / "edited").mkdir(exist_ok=True)
    for i in range(2):
        p = root / "edited" / f"e{i}.png"
        fake_from(crops[k], "gen_b", rng).save(p)
        k += 1
        rows.append({"path": f"edited/{p.name}", "label": 1, "split": "val", "generator": "edited", "group": f"e{i}",
                     "source_set": "", "origin": "test", "license": "MIT"})
    manifest = root / "MANIFEST.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def genuine_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small genuine-style manifest tree (read-only)."""
    return make_genuine_manifest(tmp_path_factory.mktemp("genuine"))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (training tests: fast and deterministic on a small CPU)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
