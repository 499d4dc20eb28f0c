"""save_generator / load_generator: exact round trip, fp16 storage, strict key checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gendet.generation import create_generator, list_generators, load_generator, save_generator
from gendet.generation.registry import read_generator_meta
from gendet.models.checkpoint import CheckpointError

from .helpers import TINY, single_thread, tiny_images


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def _trained(name: str):
    gen = create_generator(name, **TINY[name])
    gen.fit(tiny_images(8), steps=2, batch_size=4, seed=3, progress=False)
    return gen


def _gen(gen, n: int = 3) -> torch.Tensor:
    return gen.generate(n, seed=4, source=tiny_images(n, seed=8) if gen.needs_source else None)


@pytest.mark.parametrize("name", list_generators())
def test_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    gen = _trained(name)
    weights, meta_path = save_generator(gen, tmp_path / name, extra={"command": "test"})
    assert weights.name == f"{name}.safetensors" and meta_path.name == f"{name}.json"
    meta = json.loads(meta_path.read_text())
    assert meta["name"] == name and meta["seed"] == 3 and meta["steps"] == 2 and meta["command"] == "test"
    assert meta["config"] == gen.config and "gendet_version" in meta
    loaded = load_generator(tmp_path / f"{name}.safetensors")
    assert type(loaded) is type(gen) and loaded.training_summary == gen.training_summary
    assert torch.equal(_gen(loaded), _gen(gen))


def test_fp16_storage_loads_back_as_float32(tmp_path: Path) -> None:
    gen = _trained("pixel_flow")
    save_generator(gen, tmp_path / "pf", dtype=torch.float16)
    assert all(v.dtype == torch.float16 for v in load_file(str(tmp_path / "pf.safetensors")).values())
    assert read_generator_meta(tmp_path / "pf")["storage_dtype"] == "float16"
    loaded = load_generator(tmp_path / "pf")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert (_gen(loaded).int() - _gen(gen).int()).abs().float().mean() < 2.0


def test_missing_and_unexpected_keys_are_errors(tmp_path: Path) -> None:
    gen = _trained("dcgan")
    save_generator(gen, tmp_path / "g")
    path = tmp_path / "g.safetensors"
    state = load_file(str(path))
    first = sorted(state)[0]
    state["extra.weight"] = state.pop(first)
    save_file(state, str(path))
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "g")
    assert first in str(err.value) and "extra.weight" in str(err.value)


def test_config_shape_mismatch_is_an_error(tmp_path: Path) -> None:
    save_generator(_trained("dcgan"), tmp_path / "g")
    meta_path = tmp_path / "g.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["g_width"] = 16
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_generator(tmp_path / "g")


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "absent")
    save_generator(_trained("vae"), tmp_path / "v")
    (tmp_path / "v.safetensors").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "v")
