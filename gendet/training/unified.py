"""UniGenDet's two training stages: a step-indexed batch plan through the step loop (gendet.training.loop) on
the stage's objective (gendet.models.unigendet.objectives), the EMA weights saved at the end.

GDUF (stage "gduf"): one loss over mixed batches of detection and generation data,
    L = w_text * CE(explanation tokens) + w_cls * CE(head, label) + w_flow * MSE_flow
with SPEC's weights 1.0 / 0.2 / 1.0; detection batches are label-balanced and there are
`det_gen_ratio` (5) detection samples per generation sample; AdamW (0.9, 0.95), grad
clip 1.0, warm-up + cosine, EMA of the weights (the EMA is what is saved).
DIGA (stage "diga"): starts from a GDUF checkpoint, trains only the generation expert
(and the generation-only layers) with
    L = MSE_flow + w_align * (1 - mean cos(MLP(h_gen^k), resize(h_det^k)))
where h_det^k are layer-k states of the real image's vision tokens in the frozen GDUF
detector. Shape or NaN problems raise; no step is ever skipped.

Runs are step-based and resumable: each step's batch indices come from a generator
seeded by (seed, step), and the resume state holds the model, EMA, optimiser, scheduler
and RNG, so a killed run resumed with --resume ends with the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gendet.data.dataset import ImageDataset, collate_items
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.inference import predict
from gendet.evaluation.metrics import compute_metrics
from gendet.evaluation.thresholds import fit_threshold
from gendet.generation.training import ema_model
from gendet.models.checkpoint import save_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.objectives import DIGAObjective, GDUFObjective, LossWeights
from gendet.training import distributed
from gendet.training.logs import TrainLog, jsonable
from gendet.training.loop import Objective, StepLoop
from gendet.training.optim import OptimizerStep
from gendet.training.state import (
    atomic_torch_save,
    deterministic_mode,
    get_rng_state,
    mix_seed,
    read_train_state,
    samples_fingerprint,
    seed_everything,
    set_rng_state,
)
from gendet.training.trainer import ResumeError, resolve_device

STAGES = ("gduf", "diga")
STATE_FILE = "train_state/last.pt"


@dataclass
class UnifiedConfig:
    """Hyper-parameters of one stage; every field is recorded in config.json."""

    stage: str = "gduf"
    steps: int = 600
    det_batch: int = 32
    det_gen_ratio: float = 5.0
    gen_batch: int = 0  # 0: det_batch / det_gen_ratio (GDUF) or det_batch (DIGA)
    lr: float = 3e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    warmup: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    w_text: float = 1.0
    w_cls: float = 0.2
    w_flow: float = 1.0
    w_align: float = 0.5
    train_detection: bool = True  # off for the generator-only run of the "w/o GDUF" ablation
    train_generation: bool = True  # off for its detector-only run
    threshold_mode: str = "fixed"
    amp: str = "auto"  # auto/bf16: bf16 autocast on CUDA; off: float32. CPU runs always stay float32.
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    save_every_steps: int = 100
    progress: bool = True

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.steps < 1 or self.det_batch < 2 or self.det_gen_ratio <= 0 or self.gen_batch < 0:
            raise ValueError("need steps >= 1, det_batch >= 2, det_gen_ratio > 0, gen_batch >= 0")
        if self.stage == "gduf" and not (self.train_detection or self.train_generation):
            raise ValueError("GDUF with neither detection nor generation data has nothing to train")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto, bf16 or off for unigendet, got {self.amp!r}")
        if self.threshold_mode not in ("fixed", "val"):
            raise ValueError(f"threshold_mode must be 'fixed' or 'val', got {self.threshold_mode!r}")

    @property
    def generation_batch(self) -> int:
        if self.gen_batch:
            return self.gen_batch
        if self.stage == "diga":
            return self.det_batch
        return max(1, round(self.det_batch / self.det_gen_ratio))


class _Batches:
    """Step-indexed batches: step s's indices depend only on (seed, s)."""

    def __init__(self, samples: list[Sample], pp: Preprocess, cfg: UnifiedConfig) -> None:
        self.samples = samples
        self.real = [i for i, s in enumerate(samples) if s.label == 0]
        self.fake = [i for i, s in enumerate(samples) if s.label == 1]
        self.dataset = ImageDataset(samples, ImageTransform(pp, train=True), seed=cfg.seed)
        self.cfg = cfg
        if not self.real:
            raise ValueError("no real training images: generation data are the real train crops")
        if cfg.stage == "gduf" and cfg.train_detection and not self.fake:
            raise ValueError("GDUF detection data need generated training images too")

    def indices(self, step: int) -> tuple[list[int], list[int]]:
        """(detection indices, label-balanced; generation indices, real only)."""
        g = torch.Generator().manual_seed(mix_seed(self.cfg.seed, step))
        det: list[int] = []
        if self.cfg.stage == "gduf" and self.cfg.train_detection:
            half = self.cfg.det_batch // 2
            det = [self.real[i] for i in torch.randint(len(self.real), (half,), generator=g).tolist()]
            det += [self.fake[i] for i in torch.randint(len(self.fake), (self.cfg.det_batch - half,),
                                                          generator=g).tolist()]
        gen: list[int] = []
        if self.cfg.train_generation:
            gen = [self.real[i] for i in torch.randint(len(self.real), (self.cfg.generation_batch,),
                                                         generator=g).tolist()]
        return det, gen

    def loader(self, start: int) -> DataLoader:
        plan = [d + gg for d, gg in (self.indices(s) for s in range(start, self.cfg.steps))]
        return DataLoader(self.dataset, batch_sampler=plan, num_workers=self.cfg.workers, collate_fn=_collate,
                          generator=torch.Generator().manual_seed(mix_seed(self.cfg.seed, start, 7)))


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """collate_items plus each good item's position in the planned batch (detection part first)."""
    batch = collate_items(items)
    batch["position"] = [i for i, it in enumerate(items) if it["error"] is None]
    return batch


class UnifiedRun:
    def __init__(self, model: UniGenDet, samples: Sequence[Sample], val: Sequence[Sample], pp: Preprocess,
                 cfg: UnifiedConfig, out: Path, teacher: UniGenDet | None = None) -> None:
        self.model, self.cfg, self.out, self.pp = model, cfg, out, pp
        self.samples, self.val = list(samples), list(val)
        self.device = resolve_device(cfg.device)
        model.to(self.device)
        self.batches = _Batches(self.samples, pp, cfg)
        self.has_text = model.tokenizer is not None and any(s.explanation for s in self.samples)
        if cfg.stage == "diga":
            if teacher is None:
                raise ValueError("DIGA needs the frozen GDUF detector (teacher)")
            self.teacher = teacher.to(self.device).eval()
            self.teacher.requires_grad_(False)
            model.requires_grad_(False)
            params = model.generation_parameters()
            for p in params:
                p.requires_grad_(True)
        else:
            self.teacher = None
            model.requires_grad_(True)
            model.autoencoder.requires_grad_(False)
            if not cfg.train_detection:  # generator-only run: the detection head is never trained
                model.det_head.requires_grad_(False)
            params = [p for p in model.parameters() if p.requires_grad]
        self.params = params
        self.ema = ema_model(model, cfg.ema_decay)
        # clipped over the parameters in model order, as this loop always has
        self.opt = OptimizerStep(params, cfg.lr, cfg.weight_decay, cfg.steps, cfg.warmup, betas=(cfg.beta1, cfg.beta2),
                                 grad_clip=cfg.grad_clip, clip=self.params, ema=self.ema, ema_of=model)
        self.weights = LossWeights(cfg.w_text, cfg.w_cls, cfg.w_flow, cfg.w_align)
        self.log = TrainLog(out)
        # one process: the objectives call the model's own methods, which DistributedDataParallel cannot wrap
        amp = torch.bfloat16 if self.device.type == "cuda" and cfg.amp != "off" else None
        self.loop = StepLoop(model, model, self.opt, self.device, amp, distributed.DistInfo(), self.log, cfg.seed,
                             min_items=0, name=cfg.stage)  # min_items 0: no step is ever skipped
        det_size = cfg.det_batch if cfg.stage == "gduf" and cfg.train_detection else 0
        gen_size = cfg.generation_batch if cfg.train_generation else 0
        self.objective: Objective = (
            DIGAObjective(model, self.teacher, self.weights) if self.teacher is not None else
            GDUFObjective(model, self.weights, [s.explanation for s in self.samples], self.has_text, det_size,
                          gen_size))
        self.fingerprint = {"model_config": jsonable(model.config), "train": samples_fingerprint(self.samples),
                            # settings that do not change the trajectory may differ on resume
                            "config": {k: v for k, v in asdict(cfg).items()
                                       if k not in ("device", "workers", "progress", "save_every_steps")}}

    # ---- state -----------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    @property
    def step(self) -> int:
        return self.loop.step

    @property
    def errors(self) -> dict[str, str]:
        return self.loop.errors

    def save_state(self) -> None:
        atomic_torch_save({
            "fingerprint": self.fingerprint, "step": self.step, "model": self.model.state_dict(),
            **self.opt.state_dict(), "loop": self.loop.state_dict(), "rng": get_rng_state(),
            "log_offsets": self.log.offsets(),
        }, self.state_path)

    def load_state(self) -> None:
        if not self.state_path.is_file():
            raise ResumeError(f"nothing to resume: {self.state_path} does not exist")
        st = read_train_state(self.state_path, ResumeError, ("fingerprint", "model", "ema", "optimizer", "scheduler",
                                                             "loop"))
        diffs = [k for k in self.fingerprint if st["fingerprint"].get(k) != self.fingerprint[k]]
        if diffs:
            raise ResumeError(f"cannot resume {self.state_path}: the run differs in {', '.join(diffs)}")
        self.model.load_state_dict(st["model"], strict=True)
        self.opt.load_state_dict(st)
        self.loop.load_state_dict(st["loop"])
        self.log.start(st["log_offsets"])
        set_rng_state(st["rng"])

    # ---- loop ----------------------------------------------------------------------------------
    def run(self, resume: bool = False, max_steps: int | None = None) -> None:
        cfg = self.cfg
        if resume:
            self.load_state()
        else:
            seed_everything(cfg.seed)
            self.log.start(None)
            self.log.write({"kind": "start", "stage": cfg.stage, "config": asdict(cfg), "n_train": len(self.samples),
                            "generation_batch": cfg.generation_batch, "text": self.has_text})
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"unigendet/{cfg.stage}", unit="step",
                   disable=None if cfg.progress else True, dynamic_ncols=True)
        self.t0 = time.monotonic()
        stop = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
        try:
            if self.step < stop:
                self.loop.run(self.batches.loader(self.step), cfg.steps, self.step, self.objective,
                              lambda: self._after_step(bar, stop))
        finally:
            bar.close()

    def _after_step(self, bar: tqdm, stop: int) -> bool:
        """Progress, the loss log every 10 steps and the resume state; True at `stop`."""
        window = self.loop.window_means()
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in window.items()})
        if self.step % 10 == 0 or self.step == stop:
            self.log.write({"kind": "train", "step": self.step, "lr": self.opt.scheduler.get_last_lr()[0],
                            "elapsed_s": time.monotonic() - self.t0, **window})
            self.loop.reset_window()
        if self.step == stop or (self.cfg.save_every_steps and self.step % self.cfg.save_every_steps == 0):
            self.save_state()
        return self.step >= stop

    def _step(self, batch: dict[str, Any]) -> None:
        """One optimiser step on one collated batch (what the loop does with each planned batch)."""
        self.loop.run([batch], 1, 0, self.objective, lambda: True)


def train_unified(model: UniGenDet, samples: Sequence[Sample], val: Sequence[Sample], pp: Preprocess,
                  cfg: UnifiedConfig, out_dir: str | Path, teacher: UniGenDet | None = None, resume: bool = False,
                  extra_config: dict[str, Any] | None = None, max_steps: int | None = None) -> dict[str, Any]:
    """Run one stage, then save the EMA weights as a normal gendet checkpoint (with a validation threshold)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with deterministic_mode():
        run = UnifiedRun(model, samples, val, pp, cfg, out, teacher)
        run.run(resume, max_steps)
    final = run.ema.module
    final.eval()
    final.requires_grad_(False)
    config: dict[str, Any] = {**(extra_config or {}), "preprocess": pp.to_dict(), "align": pp.align,
                              "unified": asdict(cfg), "global_step": run.step,
                              "text_loss": ("on" if run.has_text else "absent: the training data have no "
                                            "explanations (or the model has no vocabulary)"),
                              "decode_errors": sorted([p, r] for p, r in run.errors.items()),
                              "seconds": round(time.monotonic() - t0, 1)}
    config.update(_threshold(final, val, pp, cfg, run.device))
    save_checkpoint(out, final, jsonable(config))
    return config


def _threshold(model: UniGenDet, val: Sequence[Sample], pp: Preprocess, cfg: UnifiedConfig,
               device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {"threshold": 0.5, "threshold_source": "fixed", "threshold_val": None, "val_metrics": None}
    if not val or not cfg.train_detection:
        out["threshold_note"] = "no validation data or no detection training: threshold stays 0.5"
        return out
    preds = predict(model, val, pp, batch_size=64, workers=cfg.workers, device=device, seed=cfg.seed)
    if len(set(preds.labels.tolist())) == 2:
        out["threshold_val"] = fit_threshold(preds.labels, preds.scores)
        if cfg.threshold_mode == "val":
            out["threshold"], out["threshold_source"] = out["threshold_val"], "val"
    out["val_metrics"] = compute_metrics(preds.labels, preds.scores, out["threshold"], out["threshold_source"])
    return out

