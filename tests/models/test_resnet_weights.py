"""ImageNet backbone weights for the ResNet-based detectors: local file only, strict except fc."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from gendet.models import create_detector
from gendet.models.checkpoint import CheckpointError

from .helpers import randomize_bn_stats


def _imagenet_like(arch: str = "resnet18", seed: int = 0) -> torchvision.models.ResNet:
    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None)  # 1000-class fc, as the published files
    randomize_bn_stats(net, seed)
    return net.eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_backbone_weights_from_torchvision_state_dict(tmp_path, suffix: str) -> None:
    src = _imagenet_like()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(src.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    det = create_detector("resnet50", arch="resnet18", image_size=32)
    assert det.config["pretrained"] is False
    fc_before = det.net.fc.weight.detach().clone()
    det.load_backbone_weights(str(path))
    assert det.config["pretrained"] is True
    assert det.config["backbone_weights"]["sha256"] and det.config["backbone_weights"]["path"].endswith(suffix)
    for k, v in src.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(det.net.state_dict()[k], v), k
    assert torch.equal(det.net.fc.weight, fc_before)  # the 1000-way ImageNet fc is not used
    det.eval()
    x = torch.randn(2, 3, 32, 32)
    body = torch.nn.Sequential(*list(src.children())[:-1])
    with torch.no_grad():
        torch.testing.assert_close(det.features(x), torch.flatten(body(x), 1))


def test_old_files_without_bn_counters_load(tmp_path) -> None:
    state = {k: v for k, v in _imagenet_like().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    det = create_detector("spec", arch="resnet18", image_size=32)
    det.load_backbone_weights(str(tmp_path / "old.pth"))
    assert det.config["pretrained"] is True


def test_gray_spectrum_conv1_is_adapted(tmp_path) -> None:
    src = _imagenet_like()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    det = create_detector("spec", arch="resnet18", image_size=32, spectrum="gray")
    det.load_backbone_weights(str(tmp_path / "w.pth"))
    torch.testing.assert_close(det.net.conv1.weight, src.conv1.weight.sum(dim=1, keepdim=True))


def test_mismatches_are_listed(tmp_path) -> None:
    src = _imagenet_like().state_dict()
    bad = {k: v for k, v in src.items() if k != "layer1.0.conv1.weight"}
    bad["layer2.0.bn1.weight"] = torch.zeros(7)
    bad["extra.bias"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    det = create_detector("resnet50", arch="resnet18", image_size=32)
    with pytest.raises(CheckpointError) as e:
        det.load_backbone_weights(str(tmp_path / "bad.pth"))
    msg = str(e.value)
    assert "layer1.0.conv1.weight" in msg and "layer2.0.bn1.weight" in msg and "extra.bias" in msg
    assert det.config["pretrained"] is False


def test_wrong_arch_is_an_error(tmp_path) -> None:
    torch.save(_imagenet_like("resnet18").state_dict(), tmp_path / "r18.pth")
    det = create_detector("cnnspot", arch="resnet34", image_size=32)
    with pytest.raises(CheckpointError, match="missing keys"):
        det.load_backbone_weights(str(tmp_path / "r18.pth"))


def test_missing_or_unreadable_file(tmp_path) -> None:
    det = create_detector("resnet50", arch="resnet18", image_size=32)
    with pytest.raises(CheckpointError, match="not found"):
        det.load_backbone_weights(str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        det.load_backbone_weights(str(tmp_path / "junk.pth"))


def test_reduced_variant_is_named() -> None:
    assert create_detector("resnet50", arch="resnet18").variant == "resnet50[arch=resnet18]"
    assert create_detector("resnet50").variant == "resnet50"
    with pytest.raises(ValueError, match="arch"):
        create_detector("resnet50", arch="resnet101")
