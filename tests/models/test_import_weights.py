"""import_weights: published key layouts (synthetic files, real names and shapes) -> gendet checkpoints."""

from __future__ import annotations

import collections
import hashlib
import json

import pytest
import torch
import torchvision
from open_clip.model import _build_vision_tower

from gendet.models import create_detector
from gendet.models.checkpoint import CheckpointError, load_checkpoint
from gendet.models.import_weights import guess_format, import_weights, read_state_file, trust_torchscript

from .helpers import randomize_bn_stats

TINY_VISION = {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32}


def _x(size: int = 64, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(7))


# -- CNNDetection: {"model": torchvision ResNet-50 state dict with fc 2048 -> 1, "optimizer": ..., ...}

def _cnndetection_source(arch: str = "resnet50") -> torch.nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=1)
    randomize_bn_stats(net)
    return net.eval()


@pytest.fixture(scope="module")
def cnndetection_file(tmp_path_factory):
    src = _cnndetection_source()
    path = tmp_path_factory.mktemp("cnnd") / "blur_jpg_prob0.5.pth"
    torch.save({"model": src.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "total_steps": 1234}, path)
    with torch.no_grad():
        ref = torch.sigmoid(src(_x())).reshape(-1)
    return path, ref


def test_cnndetection_real_shapes(cnndetection_file, tmp_path) -> None:
    path, ref = cnndetection_file
    assert read_state_file(path)["fc.weight"].shape == (1, 2048)
    det, out = import_weights("cnndetection", path, tmp_path / "ckpt")
    assert det.name == "cnnspot" and det.config["arch"] == "resnet50"
    loaded, cfg = load_checkpoint(out)
    with torch.no_grad():
        torch.testing.assert_close(loaded({"image": _x()})["prob"], ref, atol=1e-5, rtol=1e-4)
    rec = cfg["imported_from"]
    assert rec["format"] == "cnndetection"
    assert rec["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cfg["threshold"] == 0.5 and cfg["threshold_source"] == "default"
    assert cfg["preprocess"]["size"] == 224 and cfg["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert json.loads((out / "config.json").read_text())["model"] == "cnnspot"


def test_cnndetection_small_arch_and_module_prefix(tmp_path) -> None:
    src = _cnndetection_source("resnet18")
    state = collections.OrderedDict((f"module.{k}", v) for k, v in src.state_dict().items())
    torch.save({"model": state}, tmp_path / "r18.pth")
    det, _ = import_weights("cnndetection", tmp_path / "r18.pth", tmp_path / "ckpt")
    assert det.config["arch"] == "resnet18"
    with torch.no_grad():
        torch.testing.assert_close(det({"image": _x(32)})["prob"], torch.sigmoid(src(_x(32))).reshape(-1))


def test_cnndetection_mismatch_lists_keys(tmp_path) -> None:
    state = _cnndetection_source("resnet18").state_dict()
    state["fc.weight"] = torch.zeros(2, 512)  # a 2-class head
    del state["layer3.1.bn2.running_var"]
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        import_weights("cnndetection", tmp_path / "bad.pth", tmp_path / "ckpt")
    # keys are named as in the published file
    assert "fc.weight: checkpoint (2, 512)" in str(e.value) and "layer3.1.bn2.running_var" in str(e.value)
    assert not (tmp_path / "ckpt" / "model.safetensors").exists()


# -- NPR: state dict of ResNet-50 conv1(3x3/2) + layer1 + layer2 + fc1(512 -> 1)

def _npr_reference() -> torch.nn.Module:
    """NPR's released network, assembled from torchvision's ResNet-50 parts (independent of gendet)."""
    torch.manual_seed(1)
    net = torchvision.models.resnet50(weights=None)
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
    del net.layer3, net.layer4, net.fc
    net.fc1 = torch.nn.Linear(512, 1)
    randomize_bn_stats(net, 1)
    return net.eval()


def _npr_forward(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    block_top_left = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    h = net.maxpool(net.relu(net.bn1(net.conv1((x - block_top_left) * 2.0 / 3.0))))
    h = net.avgpool(net.layer2(net.layer1(h)))
    return torch.sigmoid(net.fc1(torch.flatten(h, 1))).reshape(-1)


@pytest.mark.parametrize("wrap", ["plain", "model", "module"])
def test_npr_real_shapes(tmp_path, wrap: str) -> None:
    ref_net = _npr_reference()
    state = ref_net.state_dict()
    assert state["fc1.weight"].shape == (1, 512) and state["conv1.weight"].shape == (64, 3, 3, 3)
    if wrap == "model":
        state = {"model": state}
    elif wrap == "module":
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, tmp_path / "NPR.pth")
    det, out = import_weights("npr", tmp_path / "NPR.pth", tmp_path / "ckpt")
    assert det.num_parameters == sum(p.numel() for p in ref_net.parameters())
    assert (det.config["block"], det.config["layers"], det.config["width"]) == ("bottleneck", [3, 4], 64)
    loaded, _ = load_checkpoint(out)
    with torch.no_grad():
        torch.testing.assert_close(loaded({"image": _x()})["prob"], _npr_forward(ref_net, _x()), atol=1e-5, rtol=1e-4)


# -- UnivFD: fc_weights.pth = {"weight": [1, 768], "bias": [1]} + CLIP weights from another local file

def _clip_source(embed_dim: int = 768):
    torch.manual_seed(2)
    vis = _build_vision_tower(embed_dim, dict(TINY_VISION), quick_gelu=True).eval()
    with torch.no_grad():
        for p in vis.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    fc = torch.nn.Linear(embed_dim, 1)
    return vis, fc


def _write_univfd(tmp_path, vis, fc):
    clip_state = {f"visual.{k}": v for k, v in vis.state_dict().items()}
    clip_state["text_projection"] = torch.zeros(64, 768)  # text tower keys of a full CLIP file are ignored
    clip_state["logit_scale"] = torch.tensor(4.6)
    torch.save(clip_state, tmp_path / "clip.pt")
    torch.save({"weight": fc.weight.detach().clone(), "bias": fc.bias.detach().clone()}, tmp_path / "fc_weights.pth")
    return tmp_path / "fc_weights.pth", tmp_path / "clip.pt"


def test_univfd_real_head_shapes(tmp_path) -> None:
    vis, fc = _clip_source(768)
    head, clip = _write_univfd(tmp_path, vis, fc)
    assert read_state_file(head)["weight"].shape == (1, 768)
    det, out = import_weights(
        "univfd", head, tmp_path / "ckpt", clip_weights=clip,
        model_config={"clip_vision_cfg": TINY_VISION, "clip_embed_dim": 768, "image_size": 32},
    )
    loaded, cfg = load_checkpoint(out)
    assert bool(loaded.backbone_loaded) and cfg["imported_from"]["clip_weights"]["sha256"]
    x = _x(32)
    with torch.no_grad():
        ref = torch.sigmoid(fc(vis(x))).reshape(-1)
        torch.testing.assert_close(loaded({"image": x})["prob"], ref, atol=1e-5, rtol=1e-4)


def test_univfd_refuses_without_clip_weights(tmp_path) -> None:
    vis, fc = _clip_source(768)
    head, _ = _write_univfd(tmp_path, vis, fc)
    with pytest.raises(CheckpointError, match="--clip-weights"):
        import_weights("univfd", head, tmp_path / "ckpt")


def test_univfd_head_shape_mismatch(tmp_path) -> None:
    vis, _ = _clip_source(32)  # a CLIP with 32-d embeddings, but the published 768-d head
    head, clip = _write_univfd(tmp_path, vis, torch.nn.Linear(768, 1))
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(1, 768\) vs model \(1, 32\)"):
        import_weights(
            "univfd", head, tmp_path / "ckpt", clip_weights=clip,
            model_config={"clip_vision_cfg": TINY_VISION, "clip_embed_dim": 32, "image_size": 32},
        )


# -- wrong inputs

def test_wrong_format_is_named(tmp_path) -> None:
    torch.save(_npr_reference().state_dict(), tmp_path / "npr.pth")
    with pytest.raises(CheckpointError, match="not a cnndetection checkpoint.*looks like --format npr"):
        import_weights("cnndetection", tmp_path / "npr.pth", tmp_path / "a")
    with pytest.raises(CheckpointError, match="not a univfd checkpoint.*looks like --format npr"):
        import_weights("univfd", tmp_path / "npr.pth", tmp_path / "b", clip_weights=tmp_path / "npr.pth")
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "fc.pth")
    with pytest.raises(CheckpointError, match="not a npr checkpoint.*looks like --format univfd"):
        import_weights("npr", tmp_path / "fc.pth", tmp_path / "c")
    with pytest.raises(ValueError, match="unknown format"):
        import_weights("drct", tmp_path / "fc.pth", tmp_path / "d")


class NotWeights:
    pass


def test_unreadable_inputs(tmp_path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        read_state_file(tmp_path / "list.pth")
    torch.save({"model": {"optimizer": "adam"}}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        read_state_file(tmp_path / "nested.pth")
    torch.save({"net": NotWeights()}, tmp_path / "pickled.pth")  # arbitrary objects: refused by weights_only
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_file(tmp_path / "pickled.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_file(tmp_path / "text.pth")


def test_guess_format() -> None:
    assert guess_format({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}) == "univfd"
    assert guess_format(_npr_reference().state_dict()) == "npr"
    assert guess_format(torchvision.models.resnet18(weights=None).state_dict()) == "cnndetection"
    assert guess_format({"foo": torch.zeros(1)}) is None


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_clip_archive(tmp_path) -> None:
    """OpenAI ships CLIP as a TorchScript archive; its state dict is read without unpickling code."""
    vis, _ = _clip_source(32)

    class Wrapper(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module) -> None:
            super().__init__()
            self.visual = visual
            self.logit_scale = torch.nn.Parameter(torch.tensor(4.6))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logit_scale * x

    torch.jit.script(Wrapper(vis)).save(str(tmp_path / "ViT-tiny.pt"))
    det = create_detector("univfd", image_size=32, clip_vision_cfg=TINY_VISION, clip_embed_dim=32)
    with pytest.raises(CheckpointError, match="TorchScript archive.*--trust-torchscript"):
        det.load_backbone_weights(str(tmp_path / "ViT-tiny.pt"))
    with trust_torchscript():
        state = read_state_file(tmp_path / "ViT-tiny.pt")
        assert "visual.proj" in state and "logit_scale" in state
        det.load_backbone_weights(str(tmp_path / "ViT-tiny.pt"))
    torch.testing.assert_close(det.visual.proj, vis.proj)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_a_torchscript_file_runs_no_code_unless_trusted(tmp_path, capfd) -> None:
    """The red-team file: a TorchScript module whose __setstate__ runs (prints) when loaded."""

    class Payload(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, bool]:
            return (self.weight, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
            print("PAYLOAD RAN")
            self.weight = state[0]
            self.training = state[1]

    path = tmp_path / "fc_weights.pth"
    torch.jit.script(Payload()).save(str(path))
    capfd.readouterr()
    for fmt in ("univfd", "npr", "cnndetection"):
        with pytest.raises(CheckpointError, match="TorchScript"):
            import_weights(fmt, path, tmp_path / f"out_{fmt}")
    assert "PAYLOAD RAN" not in capfd.readouterr().out
    with trust_torchscript(), pytest.raises(CheckpointError):
        import_weights("npr", path, tmp_path / "out")  # trusted: loaded (the code runs), then not an NPR layout
    assert "PAYLOAD RAN" in capfd.readouterr().out
