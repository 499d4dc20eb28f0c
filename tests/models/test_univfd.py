"""UnivFD: frozen CLIP backbone, weights only from a local file, clear error without them."""

from __future__ import annotations

import pytest
import torch

from gendet.models.checkpoint import CheckpointError

from .helpers import random_batch, small_config, small_detector

pytestmark = pytest.mark.filterwarnings("ignore:univfd is running on a RANDOM CLIP backbone")


def test_backbone_frozen_through_a_training_step() -> None:
    torch.manual_seed(0)
    det = small_detector("univfd")
    det.train()
    assert det.training and not det.visual.training
    assert all(not p.requires_grad for p in det.visual.parameters())
    assert all(p.requires_grad for p in det.fc.parameters())
    before = {k: v.clone() for k, v in det.visual.state_dict().items()}
    head_before = det.fc.weight.detach().clone()
    opt = torch.optim.AdamW(det.parameters(), lr=0.1, weight_decay=0.1)
    batch = random_batch(det)
    det.loss(batch, det(batch))["loss"].backward()
    opt.step()
    for k, v in det.visual.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(det.fc.weight, head_before)


def test_missing_clip_weights_is_a_clear_error() -> None:
    det = small_detector("univfd", allow_random_backbone=False)
    with pytest.raises(RuntimeError, match="no CLIP weights loaded.*--weights"):
        det(random_batch(det))


def test_random_backbone_warns() -> None:
    det = small_detector("univfd")
    with pytest.warns(UserWarning, match="RANDOM CLIP backbone"):
        det(random_batch(det))


def _clip_state(det, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in det.visual.state_dict().items()}


@pytest.mark.parametrize("layout", ["full_clip", "vision_only"])
def test_load_backbone_weights(tmp_path, layout: str) -> None:
    det = small_detector("univfd", allow_random_backbone=False)
    vis = _clip_state(det)
    if layout == "full_clip":  # an open_clip/OpenAI CLIP state dict: text tower keys are ignored
        state = {f"visual.{k}": v for k, v in vis.items()}
        state.update({"token_embedding.weight": torch.zeros(10, 4), "logit_scale": torch.tensor(4.6)})
    else:
        state = vis
    torch.save(state, tmp_path / "clip.pt")
    det.load_backbone_weights(str(tmp_path / "clip.pt"))
    assert bool(det.backbone_loaded)
    assert det.config["backbone_weights"]["sha256"]
    for k, v in vis.items():
        assert torch.equal(det.visual.state_dict()[k], v)
    det(random_batch(det))  # no error now
    assert all(not p.requires_grad for p in det.visual.parameters())


def test_clip_weights_mismatch_is_listed(tmp_path) -> None:
    det = small_detector("univfd", allow_random_backbone=False)
    vis = _clip_state(det)
    del vis["proj"]
    vis["positional_embedding"] = torch.zeros(3, 3)
    torch.save({f"visual.{k}": v for k, v in vis.items()}, tmp_path / "clip.pt")
    with pytest.raises(CheckpointError) as e:
        det.load_backbone_weights(str(tmp_path / "clip.pt"))
    assert "proj" in str(e.value) and "positional_embedding" in str(e.value)
    assert not bool(det.backbone_loaded)


def test_unknown_clip_model_and_defaults() -> None:
    with pytest.raises(ValueError, match="unknown open_clip model"):
        small_detector("univfd", clip_vision_cfg=None, clip_model="ViT-Nope")
    cfg = small_config("univfd")
    assert cfg["allow_random_backbone"] is True
    from gendet.models.univfd import UnivFD

    d = UnivFD.default_config
    assert d["clip_model"] == "ViT-L-14" and d["image_size"] == 224 and d["allow_random_backbone"] is False
    assert d["mean"][0] == pytest.approx(0.48145466)
