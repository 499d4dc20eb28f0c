"""The weights shipped in gendet/assets/generators (when present) load strictly and generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gendet.generation import list_generators, load_generator, shipped_generator_path
from gendet.generation.registry import read_generator_meta

from .helpers import single_thread


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def test_shipped_path_is_inside_the_package() -> None:
    import gendet

    pkg = Path(gendet.__file__).resolve().parent
    path = shipped_generator_path("dcgan")
    assert path.resolve().parent == pkg / "assets" / "generators"
    with pytest.raises(KeyError):
        shipped_generator_path("nope")


@pytest.mark.parametrize("name", list_generators())
def test_shipped_weights_load_and_generate(name: str) -> None:
    base = shipped_generator_path(name)
    if not Path(str(base) + ".safetensors").is_file():
        pytest.skip(f"no shipped weights for {name}")
    meta = read_generator_meta(base)
    assert meta["command"].startswith("gendet generators train") and "seed" in meta
    gen = load_generator(base)
    size = gen.image_size
    src = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8) if gen.needs_source else None
    out = gen.generate(2, seed=0, source=src)
    assert out.shape == (2, 3, size, size) and out.dtype == torch.uint8
    assert torch.equal(out, gen.generate(2, seed=0, source=src))
    assert out.float().std() > 1.0  # not a constant image
