"""The Python API: load a detector and score images, train one, evaluate one; typed results throughout.

    import gendet
    det = gendet.load()                      # the shipped default; or a checkpoint dir, a shipped name, a .onnx
    v = det.predict("img.jpg")               # also bytes, a PIL image, a numpy array, a tensor, or a list
    v.score, v.label, v.threshold, v.verdict, v.reason, v.provenance
    for v in det.scan(["folder/"], workers=2): ...
    run = gendet.train("probe", "data/", "runs/probe")          # -> TrainResult
    report = gendet.evaluate(run.checkpoint, "test_data/")      # -> EvalResult

- model.py: `load`, `Model` (predict, scan), `Verdict`;
- train.py: `train` -> `TrainResult` (the head solver or the epoch trainer, as `gendet train`);
- evaluate.py: `evaluate` -> `EvalResult` (the protocol's metrics, as `gendet eval`).
"""

from gendet.api.evaluate import EvalResult, evaluate
from gendet.api.model import ImageLike, Model, Verdict, load
from gendet.api.train import TrainResult, train

__all__ = ["EvalResult", "ImageLike", "Model", "TrainResult", "Verdict", "evaluate", "load", "train"]
