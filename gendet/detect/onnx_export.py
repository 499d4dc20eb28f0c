"""`gendet export --format onnx`: a checkpoint as one ONNX graph, image batch -> P(generated).

The graph takes what the scan's preprocessing produces, (B, 3, H, W) or (B, crops, 3, H, W) float32
(dynamic batch and crop axes), and returns `prob` (B,) and `logit` (B,): the mean of the crops' logits, as
`Detector.__call__` scores them. The preprocessing contract (input size, resize or crop, normalisation,
format alignment, crops), the threshold and the model's name and version go into the ONNX metadata
(`gendet.*` keys) and a side JSON (`OUT.json`), so an onnxruntime user elsewhere can reproduce the input
and `gendet detect --engine onnx` writes the torch engine's records. Detectors that cannot be traced
into one graph say why in `Detector.onnx_unsupported`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gendet.detect.model import ScanModel
from gendet.io import atomic_write_text

OPSET = 17
QUANTIZE = ("int8",)


class ExportError(Exception):
    """The model cannot be exported; the message says why."""


class _Scorer(nn.Module):
    """image -> (prob, logit), crops averaged in logit space; the crop axis is dynamic, so a runtime may score
    an image's crops in separate runs and average their logits itself (OnnxDetector does, on the CPU)."""

    def __init__(self, detector: nn.Module, crops: int) -> None:
        super().__init__()
        self.detector, self.crops = detector, crops

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.crops > 1:
            b = image.shape[0]
            logit = self.detector.forward({"image": image.flatten(0, 1)})["logit"].reshape(b, -1).mean(1)
        else:
            logit = self.detector.forward({"image": image})["logit"].reshape(-1)
        return torch.sigmoid(logit), logit


def contract(model: ScanModel) -> dict[str, Any]:
    """What a runtime needs besides the graph (written to the ONNX metadata and the side JSON)."""
    return {"format": "gendet-onnx-1", "name": model.name, "model_version": model.version,
            "threshold": model.threshold, "threshold_source": model.threshold_source,
            "preprocess": model.preprocess.to_dict(), "input": "image", "outputs": ["prob", "logit"],
            "input_layout": "(B, crops, 3, H, W) when crops > 1, else (B, 3, H, W); float32, normalised with "
                            "mean/std after resize/crop and format alignment (gendet.data.preprocess); the crop "
                            "axis is dynamic: the outputs are the mean logit of the crops given",
            "checkpoint_config": {k: model.config.get(k) for k in ("model", "model_config", "backbone")}}


def example_input(model: ScanModel, batch: int = 1) -> torch.Tensor:
    pp = model.preprocess
    shape = (batch, pp.crops, 3, pp.size, pp.size) if pp.crops > 1 else (batch, 3, pp.size, pp.size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def export_onnx(model: ScanModel, out: str | os.PathLike, quantize: str | None = None) -> Path:
    """Write `out` (+ `out`.json); ExportError for detectors that cannot be exported, with the reason."""
    det = model.detector
    reason = getattr(det, "onnx_unsupported", None)
    if reason:
        raise ExportError(f"{det.name} cannot be exported to ONNX: {reason}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ExportError(f"--quantize must be one of {QUANTIZE}, got {quantize!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scorer = _Scorer(det.eval(), model.preprocess.crops).eval()
    raw = out.with_suffix(".fp32.onnx") if quantize else out
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow of every timm block
        # the fused attention kernels of eval-mode nn.MultiheadAttention / TransformerEncoderLayer have no ONNX
        # form; the unfused path computes the same function
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(scorer, (example_input(model),), str(raw), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=["prob", "logit"],
                              dynamic_axes={"image": {0: "batch", **({1: "crops"} if model.preprocess.crops > 1
                                                                     else {})},
                                            "prob": {0: "batch"}, "logit": {0: "batch"}})
        except Exception as e:  # noqa: BLE001 - the exporter raises many kinds; the user needs the reason
            first = str(e).split("\n")[0]
            raise ExportError(f"{det.name} could not be traced to ONNX: {type(e).__name__}: {first}") from None
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    meta = contract(model)
    from gendet.detect.pipeline import count_flops

    meta["flops_per_image"] = count_flops(model)  # the thread policy's input (gendet.detect.pipeline.ThreadPolicy)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(raw), str(out), weight_type=QuantType.QInt8)
        raw.unlink()
        meta["quantized"] = "int8 dynamic (onnxruntime.quantization.quantize_dynamic, QInt8 weights)"
    _write_metadata(out, meta)
    atomic_write_text(Path(f"{out}.json"), json.dumps(meta, indent=2) + "\n")
    return out


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"gendet.{key}", json.dumps(value)
    proto.producer_name = "gendet"
    onnx.save(proto, str(path))
