"""Checkpoint storage: float16 weights load back into float32; edited configs are clear errors."""

from __future__ import annotations

import pytest


def test_weights_stored_in_float16_load_back_into_float32(tmp_path) -> None:
    import torch

    from gendet.models import create_detector
    from gendet.models.checkpoint import load_checkpoint, save_checkpoint, store_weights_as

    torch.manual_seed(0)
    det = create_detector("spec", image_size=32, arch="regnetx_002").eval()
    save_checkpoint(tmp_path, det, {})
    full = (tmp_path / "model.safetensors").stat().st_size
    store_weights_as(tmp_path, torch.float16)
    assert (tmp_path / "model.safetensors").stat().st_size < 0.55 * full
    loaded, cfg = load_checkpoint(tmp_path)
    assert cfg["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded({"image": x})["prob"], det({"image": x})["prob"], atol=2e-3, rtol=0)


def test_edited_configs_are_checkpoint_errors_not_tracebacks_or_huge_allocations(tmp_path) -> None:
    import json

    from detect.helpers import make_checkpoint

    from gendet.detect.model import ModelSetupError, load_scan_model
    from gendet.models.checkpoint import CheckpointError, load_checkpoint

    ckpt = make_checkpoint(tmp_path / "c")
    good = json.loads((ckpt / "config.json").read_text())
    cases = [
        ({"model_config": {**good["model_config"], "width": 200_000}}, "shape mismatches"),
        ({"model_config": {**good["model_config"], "width": "wide"}}, "cannot build 'tiny_cnn'"),
        ({"model_config": [1, 2]}, "must be an object"),
        ({"model": 7}, "\"model\" name"),
    ]
    for change, message in cases:
        (ckpt / "config.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(ckpt)
    for change in ({"preprocess": {**good["preprocess"], "size": "big"}}, {"preprocess": [3]},
                   {"threshold": "high"}, {"preprocess": {**good["preprocess"], "colour": 1}}):
        (ckpt / "config.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(ModelSetupError):
            load_scan_model(ckpt, "cpu")
