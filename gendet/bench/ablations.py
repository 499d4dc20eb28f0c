"""Name -> ablation study. Adding one = a runner, a report builder and one line in ABLATIONS.

`gendet bench --ablation NAME` builds (or reuses) the local benchmark, then calls the runner.
A runner returns the "ablation" block of results.json with at least:
- "table": {variant: {metric: {"mean", "ci95", "n", "values"}}} (see `interval`),
- "claims": {claim text: {"holds": bool | None, "p_value": float | None, ...}},
so the CLI and the results file treat every study the same way.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AblationOptions:
    """What `gendet bench --ablation` passes to every runner; recipe None = the study's own default."""

    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: str | None = None
    train_subset: str = "latent_flow"
    align: str = "jpeg"
    device: str = "cpu"
    cache_dir: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class AblationStudy:
    runner: str  # "module:function": (data_root, out_dir, AblationOptions) -> ablation block
    report: str  # "module:function": (results, out_dir) -> (html path, md path)
    variants: str  # one line for --help and the log
    genuine_runner: str | None = None  # "module:function" for --preset genuine (data = the manifest)


ABLATIONS: dict[str, AblationStudy] = {
    "unigendet": AblationStudy("gendet.bench.ablation:run_from_options",
                               "gendet.report.ablation_report:build_ablation_report",
                               "full, w/o SMSA, w/o GDUF, w/o DIGA",
                               "gendet.bench.genuine_unigendet:run_from_options"),
    "hrr": AblationStudy("gendet.bench.hrr_ablation:run_from_options", "gendet.report.hrr_report:build_hrr_report",
                         "dire, hrr w/o refinement, hrr, correntropy vs squared loss at 0/10/20% label noise",
                         "gendet.bench.genuine_hrr:run_from_options"),
    "gamma": AblationStudy("gendet.bench.gamma_ablation:run_from_options",
                           "gendet.report.gamma_report:build_gamma_report",
                           "full, w/o seg heads, w/o RCA, w/o manipulated data",
                           "gendet.bench.genuine_gamma:run_from_options"),
}


def _resolve(entry: str) -> Callable[..., Any]:
    module_name, fn = entry.split(":")
    return getattr(importlib.import_module(module_name), fn)


def get_ablation(name: str) -> AblationStudy:
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; available: {', '.join(sorted(ABLATIONS))}")
    return ABLATIONS[name]


def run_study(name: str, data_root: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    return _resolve(get_ablation(name).runner)(data_root, out, options)


def run_genuine_study(name: str, manifest: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    """The study on the genuine preset (its own runner: pretrained backbones, leave-one-group-out)."""
    entry = get_ablation(name).genuine_runner
    if entry is None:
        raise ValueError(f"the {name} ablation has no genuine-preset version yet; available: "
                         f"{', '.join(k for k, v in ABLATIONS.items() if v.genuine_runner)}")
    return _resolve(entry)(manifest, out, options)


def build_study_report(name: str, results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    return _resolve(get_ablation(name).report)(results, out_dir)


def pick_recipe(options: AblationOptions, recipes: dict[str, Any], default: str, study: str) -> str:
    """The study's schedule: --recipe or its default; an unknown name is a ValueError naming the choices."""
    name = options.recipe or default
    if name not in recipes:
        raise ValueError(f"unknown --recipe {name!r} for the {study} ablation; available: {', '.join(recipes)}")
    return name


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
