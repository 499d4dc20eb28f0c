"""`--engine onnx`: an exported graph run by onnxruntime, behind the detector interface the scan and the
server call (`detector({"image": x})["prob"]`), so decoding, records and verdicts are the torch engine's.

Providers: CUDA when onnxruntime has it and the device asks for it, else CPU. Threads: set from the scan's
thread choice (`set_num_threads`, mirroring torch.set_num_threads). On the CPU, T threads run T chunks of a
batch at once, each on one intra-op thread ("batch" parallelism: the chunks never wait for each other inside a
layer, so a thread the decoder processes preempt delays only its own chunk), instead of each chunk on a pool of
T threads that meet at every layer ("intra", onnxruntime's usual way; `parallel="intra"`).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gendet.data.preprocess import Preprocess
from gendet.detect.model import ModelSetupError, ScanModel, is_onnx_file, load_scan_model


class OnnxDetector:
    """A session that scores like a Detector: {"image": tensor} -> {"prob", "logit"} (float32 tensors)."""

    name = "onnx"
    onnx_unsupported = "already an ONNX graph"
    # pixels per session.run on the CPU provider (one 224-px crop): a larger chunk's activations outgrow the
    # caches and every layer slows down. Timed ad hoc on 2 threads, crops/s at 1 vs 4 crops per run: Lite0 224 px
    # 175 vs 154, Lite2 260 px 73 vs 63; a 64-px regnetx_002 ran best at 8-16 crops per run (1760 vs 1350 at 4)
    CPU_CHUNK_PIXELS = 224 * 224
    flops_per_image: float | None = None  # from the export's contract (the thread policy reads it)

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 spinning: bool = False, parallel: str = "batch") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelSetupError("--engine onnx needs onnxruntime: pip install 'gendet[onnx]'") from None
        self.path, self._ort = Path(path), ort
        want_cuda = str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
        if parallel not in ("batch", "intra"):
            raise ValueError(f"parallel must be 'batch' or 'intra', got {parallel!r}")
        self.threads, self.spinning = threads, spinning
        # batch parallelism is a CPU matter: the CUDA provider gets the whole batch in one run
        self.parallel = "intra" if "CUDAExecutionProvider" in self.providers else parallel
        self._pool: ThreadPoolExecutor | None = None
        self._buffers = threading.local()  # each chunk thread's float input, reused batch after batch
        self._session = self._open(threads)

    def _open(self, threads: int | None) -> Any:
        options = self._ort.SessionOptions()
        # onnxruntime's threads spin after each run waiting for the next (its default), burning the cores the
        # decoder processes need; gendet sets OMP_WAIT_POLICY=PASSIVE for torch for the same reason
        spin = "1" if self.spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        if self.parallel == "batch":
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            if self._pool is not None:
                self._pool.shutdown()
            n = int(threads or os.cpu_count() or 1)
            self._pool = ThreadPoolExecutor(n, thread_name_prefix="gendet-onnx") if n > 1 else None
        elif threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            session = self._ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own classes for bad files
            raise ModelSetupError(f"cannot load ONNX model {self.path}: {e}") from None
        shape = session.get_inputs()[0].shape
        # graphs exported before the crop axis was dynamic take exactly preprocess.crops crops per image
        self._crops_separable = len(shape) == 5 and not isinstance(shape[1], int)
        return session

    @property
    def independent_threads(self) -> bool:
        """True with batch parallelism: its threads run separate chunks and never wait for each other, so the
        thread policy may use a core that another process keeps busy (ThreadPolicy)."""
        return self.parallel == "batch"

    def get_num_threads(self) -> int:
        """The intra-op threads asked for (onnxruntime's default, all cores, when none was)."""
        return int(self.threads or os.cpu_count() or 1)

    def set_num_threads(self, threads: int) -> None:
        if threads != self.get_num_threads():
            self.threads = threads
            self._session = self._open(threads)

    @functools.cached_property
    def num_parameters(self) -> int:
        """Weights in the graph (BatchNorm folded into convolutions), counted when the model card asks."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return int(sum(int(np.prod(t.dims)) for t in graph.initializer))

    def eval(self) -> OnnxDetector:
        return self

    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = batch["image"]
        x = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, np.float32)
        return self._run_chunks(np.ascontiguousarray(x, dtype=np.float32), lambda c: c)

    def score_pixels(self, pixels: torch.Tensor | Sequence[torch.Tensor], pp: Preprocess) -> dict[str, torch.Tensor]:
        """As __call__ on `normalize(stack(pixels), pp)` for uint8 images ([crops,] 3, H, W) or a batch of them,
        the same bits, but each chunk is stacked and normalised by the thread that runs it: the scan's main thread
        stacked and normalised whole batches while the chunk threads waited (~6.5 % of its samples in a Lite0
        scan, py-spy)."""
        mean = np.asarray(pp.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(pp.std, np.float32).reshape(3, 1, 1)

        def normalized(chunk: Sequence[torch.Tensor]) -> np.ndarray:
            # numpy, not torch: a torch op from a pool thread would start an OpenMP team of its own per thread
            shape = (len(chunk), *chunk[0].shape)
            size = int(np.prod(shape))
            buf = getattr(self._buffers, "x", None)
            if buf is None or buf.size < size:
                buf = self._buffers.x = np.empty(size, np.float32)
            x = buf[:size].reshape(shape)
            # the operations of gendet.data.preprocess.normalize, in its order (IEEE float32: bit-identical)
            for j, image in enumerate(chunk):
                np.divide(image.detach().cpu().numpy(), np.float32(255.0), out=x[j])
            np.subtract(x, mean, out=x)
            return np.divide(x, std, out=x)

        return self._run_chunks(pixels, normalized)

    def _chunks(self, x: Any) -> tuple[list[Any], int]:
        """x (a float batch (B, [crops,] 3, H, W) or a sequence of images) in the pieces that go to one run each,
        and how many crops' logits make an image's (1: the graph averages them). On the CPU a piece holds about
        CPU_CHUNK_PIXELS: an image's crops go to separate runs (`(k, 1, 3, H, W)` pieces) when the graph's crop
        axis is dynamic and a crop is that large."""
        if not len(x) or "CUDAExecutionProvider" in self.providers:
            return ([x] if len(x) else []), 1
        crops = x[0].shape[0] if x[0].ndim == 4 else 1  # (crops, 3, H, W) per image
        per_run = max(1, self.CPU_CHUNK_PIXELS // (x[0].shape[-1] * x[0].shape[-2]))
        average = crops if crops > 1 and self._crops_separable and per_run < crops else 1
        if average > 1:
            units = (x.reshape(-1, 1, *x.shape[2:]) if not isinstance(x, Sequence)
                     else [image[c:c + 1] for image in x for c in range(crops)])
            step = per_run
        else:
            units, step = x, max(1, per_run // crops)
        runs = -(-len(units) // step)
        if self._pool is not None:
            # a multiple of the threads, evenly sized: 32 images of the 64-px model in pieces of 12 left one
            # thread 8 of them and the other 24 (model only 15 % slower than in pieces of 4)
            threads = self.get_num_threads()
            runs = min(len(units), -(-runs // threads) * threads)
        bounds = [len(units) * k // runs for k in range(runs + 1)]
        return [units[a:b] for a, b in itertools.pairwise(bounds)], average

    def _run_chunks(self, x: Any, prepare: Callable[[Any], np.ndarray]) -> dict[str, torch.Tensor]:
        """x: as for _chunks; `prepare` makes a chunk the graph's float32 input, in the thread that runs it."""
        chunks, average = self._chunks(x)
        run = functools.partial(self._session.run, ["logit"] if average > 1 else ["prob", "logit"])

        def run_chunk(chunk: Any) -> list[np.ndarray]:
            return run({"image": prepare(chunk)})

        # session.run releases the GIL and is safe to call from several threads at once
        outs = (list(self._pool.map(run_chunk, chunks)) if self._pool is not None and len(chunks) > 1
                else [run_chunk(c) for c in chunks])
        if average > 1:  # the crops' mean logit, as the graph takes it
            per_crop = np.concatenate([o[0] for o in outs]).reshape(-1, average)
            logit = torch.from_numpy(per_crop.mean(1, dtype=np.float32))
            return {"prob": torch.sigmoid(logit), "logit": logit}
        prob = np.concatenate([o[0] for o in outs]) if outs else np.zeros(0, np.float32)
        logit = np.concatenate([o[1] for o in outs]) if outs else np.zeros(0, np.float32)
        return {"prob": torch.from_numpy(prob), "logit": torch.from_numpy(logit)}


def read_contract(path: str | os.PathLike) -> dict[str, Any]:
    """The `gendet.*` metadata of an exported graph (see gendet.detect.onnx_export)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001
        raise ModelSetupError(f"{path} is not an ONNX model: {e}") from None
    meta = {p.key[len("gendet."):]: json.loads(p.value) for p in proto.metadata_props if p.key.startswith("gendet.")}
    if meta.get("format") != "gendet-onnx-1":
        raise ModelSetupError(f"{path} was not exported by `gendet export --format onnx` (no gendet metadata)")
    return meta


def load_onnx_model(source: str | os.PathLike | None, device: str | torch.device = "cpu",
                    threshold: str | float | None = None, spinning: bool = False,
                    parallel: str = "batch") -> ScanModel:
    """A ScanModel on onnxruntime: `source` an exported .onnx file, or a checkpoint directory / shipped name /
    None (the default), exported to a temporary file first (a few seconds). spinning, parallel: as for
    OnnxDetector."""
    if is_onnx_file(source):
        meta = read_contract(source)
        if threshold in ("fixed", "val"):
            raise ModelSetupError("--threshold fixed|val needs the checkpoint; with an .onnx file give a number")
        if threshold is not None:
            meta["threshold"], meta["threshold_source"] = float(threshold), "given"
        detector = OnnxDetector(source, str(device), spinning=spinning, parallel=parallel)
        detector.flops_per_image = meta.get("flops_per_image")
        return ScanModel(detector, {"onnx": str(source)}, Preprocess.from_dict(meta["preprocess"]),  # type: ignore[arg-type]
                         float(meta["threshold"]), str(meta["threshold_source"]), str(meta["name"]), Path(source),
                         meta.get("model_version"))
    from gendet.detect.onnx_export import ExportError, export_onnx

    torch_model = load_scan_model(source, "cpu", threshold)
    folder = Path(tempfile.mkdtemp(prefix="gendet_onnx_"))
    try:
        path = export_onnx(torch_model, folder / "model.onnx")
    except ExportError as e:
        raise ModelSetupError(str(e)) from None
    model = load_onnx_model(path, device, spinning=spinning, parallel=parallel)
    model.threshold, model.threshold_source, model.checkpoint = (torch_model.threshold, torch_model.threshold_source,
                                                                 torch_model.checkpoint)
    return model
