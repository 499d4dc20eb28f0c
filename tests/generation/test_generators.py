"""Every registered generator: fits, generates uint8 of the right shape, deterministically."""

from __future__ import annotations

import pytest
import torch

from gendet.generation import GENERATORS, Generator, create_generator, list_generators
from gendet.generation.base import FAMILIES
from gendet.generation.registry import get_generator_class

from .helpers import TINY, TINY_SIZE, single_thread, tiny_images

NAMES = list_generators()


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def test_registry_lists_five_distinct_families() -> None:
    assert set(NAMES) == set(GENERATORS) == set(TINY)
    families = {get_generator_class(n).family for n in NAMES}
    assert families == set(FAMILIES)
    for n in NAMES:
        cls = get_generator_class(n)
        assert issubclass(cls, Generator) and cls.name == n and cls.description
        assert cls.default_config["image_size"] == 64
        assert cls.needs_source == (cls.family == "reconstruction")


def test_unknown_name_and_config_key_are_errors() -> None:
    with pytest.raises(KeyError, match="unknown generator"):
        create_generator("nope")
    with pytest.raises(ValueError, match="unknown config keys"):
        create_generator("dcgan", widht=3)


def _generate(gen: Generator, n: int, seed: int, batch_size: int = 64) -> torch.Tensor:
    source = tiny_images(n, seed=99) if gen.needs_source else None
    return gen.generate(n, seed=seed, batch_size=batch_size, source=source)


@pytest.mark.parametrize("name", NAMES)
def test_fit_and_generate(name: str) -> None:
    images = tiny_images(12)
    gen = create_generator(name, **TINY[name])
    summary = gen.fit(images, steps=3, batch_size=4, seed=0, progress=False)
    assert summary["steps"] == 3 and summary["seed"] == 0 and summary["n_images"] == 12
    assert not gen.training
    out = _generate(gen, 5, seed=1, batch_size=2)
    assert out.shape == (5, 3, TINY_SIZE, TINY_SIZE) and out.dtype == torch.uint8
    assert torch.equal(out, _generate(gen, 5, seed=1, batch_size=2))
    # noise is drawn up front, so images do not depend on the batch size (up to float rounding)
    assert (out.int() - _generate(gen, 5, seed=1, batch_size=5).int()).abs().max() <= 1
    if not gen.needs_source:
        assert not torch.equal(out, _generate(gen, 5, seed=2, batch_size=2))


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_deterministic_for_a_seed(name: str) -> None:
    images = tiny_images(12)
    states = []
    for seed in (0, 0, 1):
        gen = create_generator(name, **TINY[name])
        torch.manual_seed(1234 + len(states))  # the caller's RNG state must not matter
        gen.fit(images, steps=2, batch_size=4, seed=seed, progress=False)
        states.append(gen.state_dict())
    same = all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    differs = any(not torch.equal(states[0][k], states[2][k]) for k in states[0])
    assert same and differs


def test_fit_changes_the_weights_and_lowers_the_loss() -> None:
    gen = create_generator("vae", **TINY["vae"])
    summary = gen.fit(tiny_images(16), steps=25, batch_size=8, seed=0, progress=False)
    curve = summary["loss"]["curve"]
    assert curve[-1]["mse"] < curve[0]["mse"]


def test_fit_and_generate_validate_inputs() -> None:
    gen = create_generator("dcgan", **TINY["dcgan"])
    with pytest.raises(TypeError, match="uint8"):
        gen.fit(tiny_images(4).float(), steps=1, batch_size=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="shape"):
        gen.fit(tiny_images(4, size=32), steps=1, batch_size=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="takes no source"):
        gen.generate(2, seed=0, source=tiny_images(2))
    assert gen.generate(0, seed=0).shape == (0, 3, TINY_SIZE, TINY_SIZE)


def test_ae_recon_requires_matching_source() -> None:
    gen = create_generator("ae_recon", **TINY["ae_recon"])
    with pytest.raises(ValueError, match="source"):
        gen.generate(2, seed=0)
    with pytest.raises(ValueError, match="source has 3 images"):
        gen.generate(2, seed=0, source=tiny_images(3))
    with pytest.raises(TypeError, match="uint8"):
        gen.generate(2, seed=0, source=tiny_images(2).float())


def test_ae_recon_adopts_latent_flow_autoencoder() -> None:
    lf = create_generator("latent_flow", **{**TINY["latent_flow"]})
    lf.fit(tiny_images(12), steps=4, batch_size=4, seed=0, progress=False)
    rec = create_generator("ae_recon", **TINY["ae_recon"])
    rec.adopt_autoencoder(lf.ae, "latent_flow")
    src = tiny_images(4, seed=5)
    with torch.inference_mode():
        expected = lf.ae.reconstruct(src.float() / 127.5 - 1)
    out = rec.generate(4, seed=0, source=src)
    assert torch.equal(out, expected.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8))
    assert rec.training_summary["adopted_autoencoder_from"] == "latent_flow"


def test_dcgan_uses_transposed_convolutions() -> None:
    gen = create_generator("dcgan", **TINY["dcgan"])
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in gen.modules())
    # the discriminator is training-only: it is not part of the saved state
    assert all(k.startswith("generator.") for k in gen.state_dict())
