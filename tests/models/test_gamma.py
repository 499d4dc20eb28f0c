"""GAMMA: shapes, the multi-task loss and its weights, the reverse cross-attention switch, explain's mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.bench.presets import TINY
from gendet.data.manipulations.codes import SOURCE_COPIED, SOURCE_GENERATED
from gendet.models.checkpoint import save_checkpoint
from gendet.models.gamma import CPU_CONFIG, GammaDetector

from .helpers import random_batch, small_detector


def _gamma(**overrides) -> GammaDetector:
    torch.manual_seed(0)
    return small_detector("gamma", **overrides)


def _grads(det: GammaDetector, batch: dict, module: torch.nn.Module) -> list[torch.Tensor | None]:
    det.zero_grad(set_to_none=True)
    det.loss(batch, det(batch))["loss"].backward()
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("size", [32, 48])
def test_forward_shapes(size: int) -> None:
    det = _gamma(image_size=size).eval()
    batch = random_batch(det, n=3)
    out = det(batch)
    assert out["logit"].shape == (3,) and out["features"].shape == (3, det.config["token_dim"])
    h = size // 2  # the cnn pyramid's finest level: stride 2
    assert out["mask_logit"].shape == (3, 1, h, h) and out["source_logit"].shape == (3, 3, h, h)
    assert out["rca_weights"].shape == (3, 1 + det.config["cls_grid"] ** 2, det.config["seg_grid"] ** 2)
    px = det.predict_pixels(batch["image"])
    assert px["mask"].shape == (3, size, size) and px["source"].shape == (3, 3, size, size)
    assert torch.allclose(px["source"].sum(1), torch.ones(3, size, size), atol=1e-5)
    assert torch.allclose(px["prob"], out["prob"])


def test_cpu_config_matches_the_tiny_preset_and_gpu_default_is_resnet50() -> None:
    spec = next(s for s in TINY.detectors if s.name == "gamma")
    assert spec.config == CPU_CONFIG and not spec.in_default_run
    assert GammaDetector.default_config["backbone"] == "resnet50"
    assert GammaDetector(**CPU_CONFIG).num_parameters < 1_000_000


def test_pixel_targets_from_batch_or_label() -> None:
    det = _gamma()
    batch = random_batch(det)  # labels 0, 1, 0, 1, no masks: implied by the label
    out = det(batch)
    implied = det.loss(batch, out)
    s = det.config["image_size"]
    source = batch["label"].view(-1, 1, 1).expand(-1, s, s) * SOURCE_GENERATED
    given = det.loss({**batch, "source": source, "mask": (source > 0).float()[:, None]}, out)
    for k in ("loss", "cls", "mask", "source"):
        torch.testing.assert_close(implied[k], given[k])
    source = source.clone()
    source[0, :8, :8] = SOURCE_COPIED  # a copied patch in a real image changes both pixel terms
    other = det.loss({**batch, "source": source, "mask": (source > 0).float()[:, None]}, out)
    assert other["mask"] != implied["mask"] and other["source"] != implied["source"]
    assert other["cls"] == implied["cls"]


def test_a_zero_weight_removes_its_term() -> None:
    batch = random_batch(_gamma())
    full = _gamma()
    parts = full.loss(batch, full(batch))
    torch.testing.assert_close(parts["loss"], parts["cls"] + 0.5 * parts["mask"] + 0.5 * parts["source"])
    for w, gone, head in (("w_mask", "mask", "mask_head"), ("w_source", "source", "source_head"),
                          ("w_cls", "cls", "head")):
        det = _gamma(**{w: 0.0})
        out = det.loss(batch, det(batch))
        assert gone not in out
        assert all(g is None for g in _grads(det, batch, getattr(det, head)))  # no gradient reaches that head
    with pytest.raises(ValueError, match="switched off"):
        det = _gamma(w_cls=0.0, w_mask=0.0, w_source=0.0)
        det.loss(batch, det(batch))
    with pytest.raises(ValueError):
        _gamma(w_mask=-1.0)


def test_reverse_cross_attention_switch_changes_the_classification_path() -> None:
    batch = random_batch(_gamma())
    on, off = _gamma(w_mask=0.0, w_source=0.0), _gamma(w_mask=0.0, w_source=0.0, rca=False)
    # the classification loss alone reaches the segmentation features only through the cross-attention
    g_on = _grads(on, batch, on.decoder)
    assert all(g is not None for g in g_on) and sum(float(g.abs().sum()) for g in g_on) > 0
    assert all(g is None for g in _grads(off, batch, off.decoder))
    assert off.rca is None and "rca_weights" not in off(batch)
    # and the segmentation features change the verdict when it is on
    on.eval()
    with torch.no_grad():
        base = on(batch)["logit"]
        on.decoder.fuse[0].weight.mul_(3.0)
        assert not torch.allclose(on(batch)["logit"], base)


def test_without_segmentation_heads() -> None:
    det = _gamma(seg_heads=False)
    batch = random_batch(det)
    out = det(batch)
    assert "mask_logit" not in out and det.mask_head is None and det.decoder is not None
    assert set(det.loss(batch, out)) == {"loss", "cls"}
    assert det.predict_pixels(batch["image"]) is None and det.relevance(batch) is None
    plain = _gamma(seg_heads=False, rca=False)
    assert plain.decoder is None and plain.num_parameters < det.num_parameters


def test_cnn_backbone_has_no_published_weights(tmp_path) -> None:
    with pytest.raises(ValueError, match="cnn backbone"):
        _gamma().load_backbone_weights(str(tmp_path / "x.pth"))


def test_resnet_backbone_loads_local_imagenet_weights(tmp_path) -> None:
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    det = _gamma(backbone="resnet18", image_size=32)
    det.load_backbone_weights(str(tmp_path / "r18.pth"))
    assert det.config["pretrained"] and torch.equal(det.backbone.net.conv1.weight, ref.conv1.weight)
    assert det(random_batch(det, n=2))["mask_logit"].shape == (2, 1, 8, 8)  # layer1: stride 4


def test_explain_shows_the_predicted_mask(tmp_path, capsys) -> None:
    from gendet.cli.main import main
    from gendet.explain import explain_image

    det = _gamma(image_size=32).eval()
    pp = det.preprocess(align="png")
    save_checkpoint(tmp_path / "ckpt", det, {"preprocess": pp.to_dict(), "threshold": 0.5,
                                             "threshold_source": "fixed"})
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    ev = explain_image(det, img, pp, 0.5, grid=2, top=1, autoencoder=None)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    x = ((x - torch.tensor(pp.mean).view(3, 1, 1)) / torch.tensor(pp.std).view(3, 1, 1))[None]
    want = det.predict_pixels(x)["mask"][0].numpy()
    assert ev.relevance_source == "predicted mask"
    np.testing.assert_allclose(ev.relevance, want, atol=1e-5)  # the mask itself, not rescaled
    img.save(tmp_path / "a.png")
    rc = main(["explain", str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "ckpt"), "--out",
               str(tmp_path / "out"), "--device", "cpu", "--grid", "2"])
    capsys.readouterr()
    assert rc == 0
    assert json.loads((tmp_path / "out" / "a_explain.json").read_text())["relevance_source"] == "predicted mask"
