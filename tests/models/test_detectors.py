"""Every registered detector: build small, train one step, round-trip its checkpoint, load strictly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from gendet.models import get_detector_class, list_detectors
from gendet.models.base import Detector
from gendet.models.checkpoint import WEIGHTS_FILE, CheckpointError, load_checkpoint, save_checkpoint

from .helpers import random_batch, small_detector

pytestmark = pytest.mark.filterwarnings("ignore:univfd is running on a RANDOM CLIP backbone")
NAMES = list_detectors()


def test_baselines_are_registered() -> None:
    assert {"resnet50", "cnnspot", "spec", "npr", "univfd", "tiny_cnn"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract_metadata(name: str) -> None:
    cls = get_detector_class(name)
    assert cls.name == name
    assert cls.description.strip()
    det = small_detector(name)
    pp = det.preprocess(align="png")
    assert pp.size == det.config["image_size"] and len(pp.mean) == 3 and len(pp.std) == 3
    aug = det.train_augment()
    if aug is not None:  # an augmentation keeps the image an RGB image of the same size
        img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (pp.size, pp.size, 3), dtype=np.uint8))
        out = aug(img, np.random.default_rng(1))
        assert out.size == img.size and out.mode == "RGB"


@pytest.mark.parametrize("name", NAMES)
def test_forward_loss_backward_step(name: str) -> None:
    torch.manual_seed(0)
    det = small_detector(name)
    det.train()
    batch = random_batch(det)
    out = det(batch)
    assert out["logit"].shape == (4,) and out["prob"].shape == (4,)
    assert torch.all((out["prob"] >= 0) & (out["prob"] <= 1))
    loss = det.loss(batch, out)["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    trainable = [p for p in det.parameters() if p.requires_grad]
    assert trainable, f"{name} has nothing to train"
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    opt.zero_grad()
    loss.backward()
    # a model that also generates may own parameters a detection loss never reaches (it lists them)
    unused = {id(p) for p in getattr(det, "generation_only_parameters", list)()}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable if id(p) not in unused)
    opt.step()
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trainable, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_accepts_other_image_size(name: str) -> None:
    det = small_detector(name, image_size=48).eval()
    with torch.no_grad():
        assert det(random_batch(det, n=2))["logit"].shape == (2,)


def _trained_and_saved(name: str, tmp_path) -> tuple[Detector, dict, torch.Tensor]:
    torch.manual_seed(1)
    det = small_detector(name)
    det.train()
    batch = random_batch(det, seed=3)
    opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=0.05)
    loss = det.loss(batch, det(batch))["loss"]
    loss.backward()
    opt.step()  # also moves BatchNorm running stats away from their initial values
    det.eval()
    with torch.no_grad():
        ref = det(batch)["prob"]
    save_checkpoint(tmp_path, det, {"threshold": 0.5, "threshold_source": "default"})
    return det, batch, ref


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name: str, tmp_path) -> None:
    det, batch, ref = _trained_and_saved(name, tmp_path)
    loaded, cfg = load_checkpoint(tmp_path)
    assert type(loaded) is type(det) and cfg["model"] == name
    assert not loaded.training
    with torch.no_grad():
        got = loaded(batch)["prob"]
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_strict_loading_lists_bad_keys(name: str, tmp_path) -> None:
    save_checkpoint(tmp_path, small_detector(name), {})
    path = tmp_path / WEIGHTS_FILE
    good = load_file(str(path))
    victim = sorted(k for k, v in good.items() if v.ndim >= 1)[0]

    removed = {k: v for k, v in good.items() if k != victim}
    save_file(removed, str(path))
    with pytest.raises(CheckpointError, match="missing keys") as e:
        load_checkpoint(tmp_path)
    assert victim in str(e.value)

    save_file({**good, "extra.weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="unexpected keys") as e:
        load_checkpoint(tmp_path)
    assert "extra.weight" in str(e.value)

    save_file({**good, victim: torch.zeros(*good[victim].shape, 2)}, str(path))
    with pytest.raises(CheckpointError, match="shape mismatches") as e:
        load_checkpoint(tmp_path)
    assert victim in str(e.value)
