"""The epoch trainer: epochs of seeded batches through the step loop (gendet.training.loop) on the detector's own
loss, validation after each epoch, early stopping on validation AUC, the best weights, exact resume.

Reproducibility contract: a run is a pure function of (detector init, samples,
TrainConfig). Each epoch's sample order comes from a generator seeded by
(seed, epoch); each sample's augmentation from (seed, epoch, index) (see
gendet.data.dataset); model-side randomness (dropout) from the global torch RNG,
whose state is saved with the resume state. So a run that is killed and resumed
ends with the same weights and metrics as one that was never interrupted, with
any number of data-loader workers.

Epochs are counted from 1 in logs and configs; `step` counts optimizer steps.

Distributed (under torchrun, see gendet.training.distributed): `batch_size` is the global
batch. Every rank draws the same seeded global batches and trains on its share of each
(DistributedDataParallel averages the gradients, weighted by share size so they are those of
the mean loss over the global batch), so each sample is seen once per epoch across ranks, and the step
count, schedule and resume state do not depend on the number of ranks: a run written by N
ranks resumes on M. Only rank 0 writes files.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import log_loss
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gendet.data.dataset import collate_items
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.data.shards import make_dataset
from gendet.evaluation.metrics import compute_metrics
from gendet.evaluation.thresholds import fit_threshold
from gendet.models.base import Detector
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from gendet.training import distributed
from gendet.training.logs import CSV_FILE, JSONL_FILE, TrainLog, jsonable
from gendet.training.loop import StepLoop, note_errors
from gendet.training.optim import OptimizerStep, warmup_steps
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
from gendet.training.validation import score_validation

STATE_DIR = "train_state"
STATE_FILE = "last.pt"
STATE_VERSION = 2  # 2: the step loop's progress under "loop"
AMP_MODES = ("auto", "bf16", "fp16", "off")
THRESHOLD_MODES = ("fixed", "val")
# Fields that change the optimisation trajectory: a resume must not change them.
TRAJECTORY_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "warmup", "grad_accum", "seed", "grad_clip", "amp")


class ResumeError(ValueError):
    """The saved state cannot continue this run (missing, or different data/model/settings)."""


@dataclass
class TrainConfig:
    """Training hyper-parameters; every field is recorded in config.json.

    warmup: a fraction of all optimizer steps when < 1, else a number of steps.
    amp: "auto" = bf16 autocast on CUDA, off on CPU; "fp16" adds a GradScaler.
    patience: epochs without validation improvement before stopping (0 = never stop early).
    max_steps: stop after this many optimizer steps (the schedule still spans `epochs`,
        so a run stopped here and resumed later follows the uninterrupted trajectory).
    save_every_steps: also write the resume state every this many steps (0 = epoch ends only).
    threshold_mode: "fixed" keeps 0.5 as the operating threshold; "val" uses the one fitted on validation.
    holdout: fraction of train held out for validation (used by the CLI, recorded here).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    amp: str = "auto"
    patience: int = 3
    holdout: float = 0.1
    threshold_mode: str = "fixed"
    log_every: int = 10
    save_every_steps: int = 50
    max_steps: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("epochs, batch_size and grad_accum must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup < 0:
            raise ValueError("lr must be > 0, weight_decay and warmup >= 0")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.workers < 0 or self.patience < 0 or self.log_every < 1 or self.save_every_steps < 0:
            raise ValueError("workers, patience, save_every_steps must be >= 0 and log_every >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 (or None)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None  # autocast only on CUDA: CPU runs stay in float32 for exact reproducibility
    return torch.float16 if mode == "fp16" else torch.bfloat16


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches as index lists, from a generator seeded by (seed, epoch).

    A trailing batch of one sample joins the previous batch: BatchNorm cannot
    train on a single sample.
    """
    g = torch.Generator().manual_seed(mix_seed(seed, epoch))
    perm = torch.randperm(n, generator=g).tolist()
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class DetectorObjective:
    """A detector's own loss (`Detector.loss`) on its forward pass (through the DDP wrapper when there is one)."""

    def __init__(self, model: nn.Module, detector: Detector) -> None:
        self.model, self.detector = model, detector

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.detector.loss(batch, self.model(batch))


class _Run:
    """One training run; all mutable progress lives in attributes saved by `_save_state`."""

    def __init__(
        self, detector: Detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
        pp: Preprocess, cfg: TrainConfig, out_dir: Path,
    ) -> None:
        self.detector, self.pp, self.cfg, self.out = detector, pp, cfg, out_dir
        self.train_samples, self.val_samples = list(train_samples), list(val_samples)
        if not self.train_samples:
            raise ValueError("no training samples")
        self.dist = distributed.info()
        if cfg.batch_size < self.dist.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} is the global batch: it must be >= the number of "
                             f"processes ({self.dist.world_size})")
        self.device = resolve_device(cfg.device)
        self.amp_dtype = _amp_dtype(cfg.amp, self.device)
        self.dataset = make_dataset(
            self.train_samples, ImageTransform(pp, train=True, augment=detector.train_augment()), seed=cfg.seed
        )
        self.n_batches = len(epoch_batches(len(self.train_samples), cfg.batch_size, cfg.seed, 0))
        self.steps_per_epoch = math.ceil(self.n_batches / cfg.grad_accum)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = warmup_steps(cfg.warmup, self.total_steps)
        # BatchNorm cannot train on one sample: such batches (after decode errors) are skipped.
        self.min_items = 2 if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in detector.modules()) else 1

        detector.to(self.device)
        self.model = distributed.wrap_ddp(detector, self.device)  # the detector itself in one process
        self.opt = OptimizerStep(detector.parameters(), cfg.lr, cfg.weight_decay, self.total_steps, cfg.warmup,
                                 grad_clip=cfg.grad_clip,
                                 scaler=torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None)
        self.log = TrainLog(out_dir) if self.dist.is_main else distributed.NullTrainLog()
        self.loop = StepLoop(self.model, detector, self.opt, self.device, self.amp_dtype, self.dist, self.log,
                             cfg.seed, cfg.grad_accum, self.min_items)
        self.objective = DetectorObjective(self.model, detector)
        self.state_path = out_dir / STATE_DIR / STATE_FILE
        self.fingerprint = {
            "model": detector.name,
            "model_config": jsonable(detector.config),
            "train": samples_fingerprint(self.train_samples),
            "val": samples_fingerprint(self.val_samples),
            "preprocess": pp.to_dict(),
        }

        # progress (saved in the resume state, with the step loop's: step, batches of the epoch done, losses,
        # bad training files, skipped batches)
        self.epoch = 0  # 0-based epoch being trained
        self.best: dict[str, Any] | None = None  # epoch, step, auc, loss, metrics, labels, scores
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.val_errors: dict[str, str] = {}
        self.seconds_per_epoch: list[float] = []

    @property
    def global_step(self) -> int:
        return self.loop.step

    @property
    def train_errors(self) -> dict[str, str]:
        return self.loop.errors

    # -- resume state --------------------------------------------------------
    def _save_state(self) -> None:
        if not self.dist.is_main:
            return
        state = {
            "version": STATE_VERSION,
            "world_size": self.dist.world_size,
            "config": asdict(self.cfg),
            "fingerprint": self.fingerprint,
            "model": _cpu_state(self.detector),
            **self.opt.state_dict(),
            "loop": self.loop.state_dict(),
            "global_step": self.global_step,  # also in "loop"; here for tools that watch a run's progress
            "epoch": self.epoch,
            "best": self.best,
            "best_weights": self.best_weights,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "val_errors": dict(self.val_errors),
            "seconds_per_epoch": list(self.seconds_per_epoch),
            "rng": get_rng_state(),
            "log_offsets": self.log.offsets(),
        }
        atomic_torch_save(state, self.state_path)

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            raise ResumeError(f"nothing to resume: {self.state_path} does not exist")
        state = read_train_state(self.state_path, ResumeError, ("version", "fingerprint", "config"))
        if state.get("version") != STATE_VERSION:
            raise ResumeError(f"{self.state_path} has state version {state.get('version')}, expected {STATE_VERSION}")
        diffs = [k for k in self.fingerprint if state["fingerprint"].get(k) != self.fingerprint[k]]
        if diffs:
            raise ResumeError(f"cannot resume {self.state_path}: the run differs in {', '.join(diffs)}")
        saved, now = state["config"], asdict(self.cfg)
        changed = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in TRAJECTORY_FIELDS if saved.get(k) != now[k]]
        if changed:
            raise ResumeError("cannot resume with different training settings: " + "; ".join(changed))
        self.detector.load_state_dict(state["model"], strict=True)
        self.opt.load_state_dict(state)
        self.loop.load_state_dict(state["loop"])
        for key in ("epoch", "best", "best_weights", "bad_epochs", "stopped_early", "val_errors",
                    "seconds_per_epoch"):
            setattr(self, key, state[key])
        self.log.start(state["log_offsets"])
        if self.dist.world_size == 1 and state.get("world_size", 1) == 1:
            set_rng_state(state["rng"])  # one process before and now: continue the exact RNG stream
        else:
            distributed.seed_rank(self.cfg.seed, self.dist.rank, self.global_step)

    # -- training ------------------------------------------------------------
    def _lr(self) -> float:
        return self.opt.lr

    def _train_epoch(self, bar: tqdm) -> bool:
        """Train the rest of `self.epoch`; True when max_steps stopped it."""
        cfg = self.cfg
        if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
            return True
        batches = epoch_batches(len(self.train_samples), cfg.batch_size, cfg.seed, self.epoch)
        if self.loop.consumed >= len(batches):
            return False
        loader = self._epoch_loader(batches)
        self.detector.train()
        self.loop.context = {"epoch": self.epoch + 1}
        return self.loop.run(loader, len(batches), self.loop.consumed, self.objective, lambda: self._after_step(bar))

    def _epoch_loader(self, batches: list) -> DataLoader:
        """This rank's share of the epoch's remaining batches."""
        self.dataset.set_epoch(self.epoch)
        return DataLoader(
            self.dataset, num_workers=self.cfg.workers,
            batch_sampler=[distributed.rank_shard(b, self.dist) for b in batches[self.loop.consumed :]],
            collate_fn=collate_items,
            # own generator: creating the loader must not draw from the global RNG,
            # or a loader built at resume time would shift dropout randomness.
            generator=torch.Generator().manual_seed(mix_seed(self.cfg.seed, self.epoch, 1)),
        )

    def _after_step(self, bar: tqdm) -> bool:
        """Progress, the loss log and periodic saves after an optimizer step; True when max_steps is reached."""
        cfg = self.cfg
        bar.update(1)
        window = self.loop.window_means()
        if window:
            bar.set_postfix(loss=f"{window['loss']:.4f}", lr=f"{self._lr():.2e}")
        if self.global_step % cfg.log_every == 0 and window:
            self.log.write({"kind": "train", "epoch": self.epoch + 1, "step": self.global_step,
                            "lr": self._lr(), **window, "elapsed_s": time.monotonic() - self.t0})
            self.loop.reset_window()
        reached = cfg.max_steps is not None and self.global_step >= cfg.max_steps
        if reached or (cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0):
            self._save_state()
        return reached

    # -- validation ------------------------------------------------------------
    def _validate(self) -> dict[str, Any] | None:
        """Score the validation split; update best weights and the early-stopping counter."""
        if not self.val_samples:
            return None
        labels, scores, errors = score_validation(
            self.detector, self.val_samples, self.pp, self.cfg.batch_size, self.cfg.workers, self.device,
            self.cfg.seed, self.dist)
        note_errors(errors, self.val_errors, "val", self.log, self.dist, {"epoch": self.epoch + 1,
                                                                           "step": self.global_step})
        if len(scores) == 0:
            if self.dist.is_main:
                tqdm.write("no validation image could be decoded: this epoch is not validated", file=sys.stderr)
            self.detector.train()
            return None
        metrics = jsonable(compute_metrics(labels, scores, 0.5, "fixed"))
        val_loss = float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
        auc = metrics.get("auc")
        improved = self.best is None or _better(auc, val_loss, self.best["auc"], self.best["loss"])
        if improved:
            self.best = {"epoch": self.epoch + 1, "step": self.global_step, "auc": auc, "loss": val_loss,
                         "metrics": metrics, "labels": torch.from_numpy(labels.astype(np.int64)),
                         "scores": torch.from_numpy(scores.astype(np.float64))}
            self.best_weights = _cpu_state(self.detector)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.detector.train()
        return {"val_loss": val_loss, "metrics": metrics, "best": improved}

    def _log_epoch(self, val: dict[str, Any] | None) -> None:
        row: dict[str, Any] = {"kind": "val", "epoch": self.epoch + 1, "step": self.global_step, "lr": self._lr(),
                               "loss": self.loop.total_means().get("loss"),
                               "elapsed_s": time.monotonic() - self.t0}
        if val is not None:
            m = val["metrics"]
            row.update({"val_loss": val["val_loss"], "val_auc": m.get("auc"), "val_acc": m.get("acc"),
                        "val_ap": m.get("ap"), "val_real_acc": m.get("real_acc"),
                        "val_fake_acc": m.get("fake_acc"), "best": val["best"], "val_metrics": m})
        self.log.write(row)
        if not self.dist.is_main:
            return
        desc = f"epoch {self.epoch + 1}: train loss {row['loss'] if row['loss'] is None else round(row['loss'], 4)}"
        if val is not None:
            desc += f", val loss {val['val_loss']:.4f}, val AUC {val['metrics'].get('auc')}"
        tqdm.write(desc, file=sys.stderr)

    # -- the whole run -----------------------------------------------------------
    def run(self, resume: bool) -> str:
        """Train to the end; returns why it stopped: completed, early_stop or max_steps."""
        self.t0 = time.monotonic()
        if resume:
            self._load_state()
        else:
            seed_everything(self.cfg.seed)
            self.log.start(None)
            self.log.write({"kind": "start", "config": asdict(self.cfg), "world_size": self.dist.world_size,
                            "n_train": len(self.train_samples),
                            "n_val": len(self.val_samples), "steps_per_epoch": self.steps_per_epoch,
                            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps})
        bar = tqdm(total=self.total_steps, initial=self.global_step, desc="training", unit="step",
                   disable=None if self.cfg.progress and self.dist.is_main else True, dynamic_ncols=True)
        reason = "completed"
        try:
            while self.epoch < self.cfg.epochs and not self.stopped_early:
                t_epoch = time.monotonic()
                bar.set_description(f"epoch {self.epoch + 1}/{self.cfg.epochs}")
                if self._train_epoch(bar):
                    # max_steps: validate what we have, but keep the saved state at the step
                    # boundary so a later resume continues the uninterrupted trajectory.
                    self._log_epoch(self._validate())
                    reason = "max_steps"
                    break
                val = self._validate()
                self._log_epoch(val)
                self.seconds_per_epoch.append(time.monotonic() - t_epoch)
                self.stopped_early = bool(self.cfg.patience and val is not None
                                          and self.bad_epochs >= self.cfg.patience)
                self.epoch += 1
                self.loop.consumed = 0
                self.loop.reset_totals()
                self._save_state()
        finally:
            bar.close()
        if self.stopped_early:
            reason = "early_stop"
        return reason


def _better(auc: float | None, loss: float, best_auc: float | None, best_loss: float) -> bool:
    """Higher validation AUC wins; ties (or AUC undefined) go to the lower validation loss."""
    if auc is not None and best_auc is not None and auc != best_auc:
        return auc > best_auc
    if auc is not None and best_auc is None:
        return True
    if auc is None and best_auc is not None:
        return False
    return loss < best_loss


def train(
    detector: Detector,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    pp: Preprocess,
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `detector`, keep the best validation weights, write the checkpoint and logs to `out_dir`.

    Returns a summary (best epoch, validation metrics, thresholds, files, timings).
    `extra_config` (data root, subset, layout, weights, command, ...) is merged into config.json.
    """
    out = Path(out_dir)
    dist_info = distributed.info()
    if dist_info.is_main:  # the other ranks never touch the output folder
        out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with deterministic_mode():
        run = _Run(detector, train_samples, val_samples, pp, cfg, out)
        reason = run.run(resume)
    if run.best_weights is not None:
        detector.load_state_dict(run.best_weights, strict=True)
    distributed.broadcast_buffers(detector)  # after a run without validation, BatchNorm statistics differ per rank
    detector.eval()
    thr = _thresholds(run, cfg)
    config: dict[str, Any] = {
        **(extra_config or {}),
        "preprocess": pp.to_dict(),
        "align": pp.align,
        **asdict(cfg),
        **thr,
        "best_epoch": run.best["epoch"] if run.best else None,
        "best_step": run.best["step"] if run.best else None,
        "global_step": run.global_step,
        "epochs_run": run.epoch if reason != "max_steps" else run.epoch + 1,
        "stop_reason": reason,
        "n_train": len(run.train_samples),
        "n_val": len(run.val_samples),
        "decode_errors": {"train": len(run.train_errors), "val": len(run.val_errors),
                          "files": sorted([p, r] for p, r in {**run.train_errors, **run.val_errors}.items())},
        "skipped_batches": run.loop.skipped_batches,
        "seconds_per_epoch": run.seconds_per_epoch,
    }
    if dist_info.enabled:
        # every rank's final weights, hashed: identical hashes show the ranks never diverged
        hashes = distributed.gather_objects(distributed.state_sha256(detector))
        config["distributed"] = {"world_size": dist_info.world_size, "backend": dist_info.backend,
                                 "rank_state_sha256": hashes}
        if len(set(hashes)) > 1 and dist_info.is_main:
            print(f"warning: the ranks' final weights differ: {hashes}", file=sys.stderr)
    config = jsonable(config)
    if dist_info.is_main:
        save_checkpoint(out, detector, config)
    files = [str(out / f) for f in (WEIGHTS_FILE, CONFIG_FILE, JSONL_FILE, CSV_FILE)]
    files.append(str(run.state_path))
    return {
        "out_dir": str(out),
        "files": files,
        "seconds": time.monotonic() - t0,
        **{k: config[k] for k in ("best_epoch", "best_step", "global_step", "epochs_run", "stop_reason",
                                  "n_train", "n_val", "decode_errors", "skipped_batches", "seconds_per_epoch",
                                  "threshold", "threshold_source", "threshold_val", "val_metrics")},
    }


def _thresholds(run: _Run, cfg: TrainConfig) -> dict[str, Any]:
    """threshold_val fitted on the best epoch's validation scores; operating threshold per cfg.threshold_mode."""
    out: dict[str, Any] = {"threshold": 0.5, "threshold_source": "fixed", "threshold_val": None,
                           "val_metrics": None}
    if run.best is None:
        out["threshold_note"] = "no validation samples: no threshold fitted, no best epoch selected"
        if cfg.threshold_mode == "val":
            out["threshold_note"] += "; the operating threshold stays 0.5 (fixed)"
        return out
    labels, scores = run.best["labels"].numpy(), run.best["scores"].numpy()
    try:
        out["threshold_val"] = fit_threshold(labels, scores)
    except ValueError as e:
        out["threshold_note"] = f"threshold_val not fitted: {e}"
    if cfg.threshold_mode == "val":
        if out["threshold_val"] is None:
            out["threshold_note"] += "; the operating threshold stays 0.5 (fixed)"
        else:
            # fitted on the validation split, so validation metrics at it are optimistic
            out["threshold"], out["threshold_source"] = out["threshold_val"], "val"
    out["val_metrics"] = compute_metrics(labels, scores, out["threshold"], out["threshold_source"])
    return out
