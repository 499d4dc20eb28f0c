"""Checkpoint storage: weights stored in a smaller dtype load back into the model's own."""

from __future__ import annotations


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
