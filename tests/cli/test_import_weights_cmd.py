"""`gendet import-weights` end to end on small synthetic published-layout files."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from gendet.cli.main import main
from gendet.models.checkpoint import load_checkpoint


def _npr_state() -> dict[str, torch.Tensor]:
    """NPR's published key layout (ResNet-50 conv1 3x3/2 + layer1 + layer2 + fc1 512->1)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
    del net.layer3, net.layer4, net.fc
    net.fc1 = torch.nn.Linear(512, 1)
    return net.state_dict()


def test_import_npr(tmp_path, capsys) -> None:
    torch.save(_npr_state(), tmp_path / "NPR.pth")
    out = tmp_path / "ckpt"
    assert main(["import-weights", "--format", "npr", str(tmp_path / "NPR.pth"), "--out", str(out)]) == 0
    assert "npr" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "npr" and cfg["imported_from"]["format"] == "npr"
    assert len(cfg["imported_from"]["source"]["sha256"]) == 64
    assert cfg["align"] == "jpeg" and cfg["threshold"] == 0.5
    det, _ = load_checkpoint(out)
    assert det.num_parameters == 1437761
    # a second import into the same directory needs --overwrite
    assert main(["import-weights", "--format", "npr", str(tmp_path / "NPR.pth"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["import-weights", "--format", "npr", str(tmp_path / "NPR.pth"), "--out", str(out),
                 "--overwrite", "--align", "png"]) == 0
    assert json.loads((out / "config.json").read_text())["align"] == "png"


def test_import_cnndetection_small(tmp_path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=1)
    torch.save({"model": net.state_dict(), "total_steps": 10}, tmp_path / "cnnd.pth")
    out = tmp_path / "ckpt"
    assert main(["import-weights", "--format", "cnndetection", str(tmp_path / "cnnd.pth"), "--out", str(out)]) == 0
    det, cfg = load_checkpoint(out)
    assert det.name == "cnnspot" and cfg["model_config"]["arch"] == "resnet18"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("wrong_format", "looks like --format npr"),
        ("univfd_without_clip", "--clip-weights"),
        ("missing_file", "is not a file"),
        ("clip_for_npr", "apply to --format univfd only"),
    ],
)
def test_clear_errors(tmp_path, capsys, case: str, expected: str) -> None:
    torch.save(_npr_state(), tmp_path / "NPR.pth")
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "fc_weights.pth")
    out = str(tmp_path / "ckpt")
    argv = {
        "wrong_format": ["--format", "cnndetection", str(tmp_path / "NPR.pth")],
        "univfd_without_clip": ["--format", "univfd", str(tmp_path / "fc_weights.pth")],
        "missing_file": ["--format", "npr", str(tmp_path / "absent.pth")],
        "clip_for_npr": ["--format", "npr", str(tmp_path / "NPR.pth"), "--clip-weights", str(tmp_path / "NPR.pth")],
    }[case]
    assert main(["import-weights", *argv, "--out", out]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "ckpt" / "model.safetensors").exists()


def test_unknown_format_is_rejected_by_the_parser(tmp_path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["import-weights", "--format", "drct", str(tmp_path / "x.pth"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
