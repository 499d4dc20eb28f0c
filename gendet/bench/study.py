"""An ablation study: one class per paper and preset, one runner (`run_study`), one report (report/study.py).

A `Study` names its variants and metrics, prepares what its seeds share, measures every variant for one seed
and checks the paper's claims on the table; `run_study` runs the seeds and builds the "ablation" block of
results.json the same way for every study:
- "table": {variant: {metric: {"mean", "ci95", "n", "values"}}} (see `interval`),
- "claims": {claim text: {"holds": bool | None, "p_value": float | None, ...}},
- "runs": {variant: [one row per seed]}, plus "study", "preset", "recipe", "seeds", "timings" and the study's
  own `summary()` keys.
The statistics every study uses (interval, Welch's p, the claim checks) are here too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import torch

    from gendet.report.builder import ReportBuilder


@dataclass(frozen=True)
class AblationOptions:
    """What `gendet bench --ablation` passes to every study; recipe None = the study's own default."""

    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: str | None = None
    train_subset: str = "latent_flow"
    align: str = "jpeg"
    device: str = "cpu"
    cache_dir: Path | None = None
    progress: bool = True


class Study:
    """One ablation study. Subclasses set the class attributes and implement variant_names, run_seed, claims
    and from_options; prepare, summary and report_sections are optional."""

    name: ClassVar[str] = ""  # the --ablation name
    preset: ClassVar[str] = ""  # "tiny" (the local benchmark) or "genuine"
    title: ClassVar[str] = ""  # the report's title
    protocol: ClassVar[str] = ""  # what is trained and measured, for the report
    metrics: ClassVar[tuple[str, ...]] = ()  # the table's columns, headline first
    recipes: ClassVar[dict[str, dict[str, Any]]] = {}
    default_recipe: ClassVar[str] = ""

    def __init__(self, out: Path, recipe_name: str | None = None, recipe: dict[str, Any] | None = None,
                 progress: bool = True) -> None:
        self.recipe_name = recipe_name or self.default_recipe
        if recipe is None and self.recipe_name not in self.recipes:
            raise ValueError(f"unknown --recipe {self.recipe_name!r} for the {self.name} ablation"
                             f"{' on the genuine preset' if self.preset == 'genuine' else ''}; available: "
                             f"{', '.join(self.recipes)}")
        self.recipe: dict[str, Any] = dict(recipe if recipe is not None else self.recipes[self.recipe_name])
        self.out, self.progress = Path(out), progress
        self.timings: dict[str, float] = {}

    @classmethod
    def from_options(cls, data: Path, out: Path, options: AblationOptions) -> Study:
        """The study as `gendet bench --ablation` runs it on `data` (a benchmark root or a manifest)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """What every seed shares (data, an autoencoder, reference features ...), built or read from a cache."""

    def variant_names(self) -> list[str]:
        raise NotImplementedError

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        """Each variant's row for this seed (`first`: the first seed, e.g. to save samples)."""
        raise NotImplementedError

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """The study's own keys of the result block (its variants, model config, what it prepared)."""
        return {}

    def preset_summary(self) -> dict[str, Any]:
        """The keys every study on this preset adds to the block (after the seeds ran)."""
        return {}

    @classmethod
    def report_sections(cls, rb: ReportBuilder, ab: dict[str, Any], out_dir: Path) -> None:
        """The study's own report sections, after the shared ones (report/study.py)."""

    def timed(self, key: str, t0: float) -> None:
        self.timings[key] = round(time.monotonic() - t0, 1)


def run_study(study: Study, seeds: Sequence[int]) -> dict[str, Any]:
    """The study over `seeds`: its "ablation" block of results.json."""
    t0 = time.monotonic()
    study.prepare()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in study.variant_names()}
    for k, seed in enumerate(seeds):
        for name, row in study.run_seed(seed, k == 0).items():  # a preset's baseline rows come after the variants
            runs.setdefault(name, []).append({"seed": seed, **row})
    table = {name: {m: interval([r.get(m) for r in rs]) for m in study.metrics} for name, rs in runs.items()}
    return {"study": study.name, "preset": study.preset, "protocol": study.protocol,
            "recipe": {"name": study.recipe_name, **study.recipe}, "seeds": list(seeds), **study.preset_summary(),
            **study.summary(), "runs": runs, "table": table, "claims": study.claims(table),
            "timings": {**study.timings, "total_s": round(time.monotonic() - t0, 1)}}


def slug(name: str) -> str:
    """A variant name as a file name: 'w/o SMSA' -> 'w_o_smsa'."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def save_sample_grid(images: torch.Tensor, path: Path) -> str:
    """uint8 (n, 3, H, W) samples as one PNG grid at `path`; returns the file name (the report finds it beside
    results.json's ablation folder)."""
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float() / 255.0, str(path), nrow=8, padding=2)
    return path.name


def interval(values: list[float | None]) -> dict[str, Any]:
    """Mean and 95% t-interval half-width over seeds (None with one seed); None/NaN values are left out."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return {"mean": None, "ci95": None, "n": 0, "values": values}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": float(v.mean()), "ci95": half, "n": int(len(v)), "values": values}


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Welch's t-test p-value across seeds, so a difference inside the seed noise is not read as a result."""
    a = [x for x in a if x is not None]
    b = [x for x in b if x is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def compare(table: dict[str, dict[str, dict[str, Any]]], full: str, ablated: str, metric: str,
            higher_is_better: bool = True) -> dict[str, Any]:
    """One claim 'full beats ablated on metric', checked on the means, with the seed-level p-value."""
    va, vb = table[full][metric]["mean"], table[ablated][metric]["mean"]
    holds = None if va is None or vb is None else (va > vb if higher_is_better else va < vb)
    return {"full": va, "ablated": vb, "holds": holds,
            "p_value": welch_p(table[full][metric]["values"], table[ablated][metric]["values"])}


def kid_claim(table: dict[str, dict[str, dict[str, Any]]], full: str, ablated: str,
              min_reduction: float = 0.10) -> dict[str, Any]:
    """'full lowers KID by >= min_reduction relative to ablated', on the means, with the seed-level p-value."""
    c = compare(table, full, ablated, "kid", higher_is_better=False)
    kf, kn = c["full"], c["ablated"]
    rel = None if kf is None or kn is None or kn == 0 else (kn - kf) / abs(kn)
    c.update(relative_reduction=rel, holds=None if rel is None else rel >= min_reduction)
    return c
