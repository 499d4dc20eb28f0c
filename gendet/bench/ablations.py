"""Name -> ablation study, per preset. Adding one = a `Study` subclass (gendet.bench.study) and one line here.

`gendet bench --ablation NAME` builds (or reuses) the local benchmark and runs the study's "tiny" class on it;
`--preset genuine --data MANIFEST --ablation NAME` runs its "genuine" class. Both go through one runner
(`run_study`) and one report (gendet.report.study.build_study_report).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gendet.bench.study import AblationOptions, Study, run_study


@dataclass(frozen=True)
class AblationEntry:
    variants: str  # one line for --help and the log
    studies: dict[str, str] = field(default_factory=dict)  # preset -> "module:Class"


ABLATIONS: dict[str, AblationEntry] = {
    "unigendet": AblationEntry("full, w/o SMSA, w/o GDUF, w/o DIGA",
                               {"tiny": "gendet.bench.ablation:UniGenDetTinyStudy",
                                "genuine": "gendet.bench.genuine_unigendet:UniGenDetStudy"}),
    "hrr": AblationEntry("dire, hrr w/o refinement, hrr, correntropy vs squared loss at 0/10/20% label noise",
                         {"tiny": "gendet.bench.hrr_ablation:HRRTinyStudy",
                          "genuine": "gendet.bench.genuine_hrr:HRRStudy"}),
    "gamma": AblationEntry("full, w/o seg heads, w/o RCA, w/o manipulated data",
                           {"tiny": "gendet.bench.gamma_ablation:GammaTinyStudy",
                            "genuine": "gendet.bench.genuine_gamma:GammaStudy"}),
}


def get_ablation(name: str) -> AblationEntry:
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; available: {', '.join(sorted(ABLATIONS))}")
    return ABLATIONS[name]


def study_class(name: str, preset: str) -> type[Study]:
    """The registered study class of ablation `name` on `preset` ("tiny" or "genuine")."""
    entry = get_ablation(name).studies.get(preset)
    if entry is None:
        raise ValueError(f"the {name} ablation has no {preset}-preset version; available: "
                         f"{', '.join(k for k, v in ABLATIONS.items() if preset in v.studies)}")
    module_name, cls = entry.split(":")
    return getattr(importlib.import_module(module_name), cls)


def run_named_study(name: str, preset: str, data: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    """Ablation `name` on `preset` over options.seeds (data: the benchmark root, or the genuine manifest)."""
    return run_study(study_class(name, preset).from_options(data, out, options), options.seeds)


def build_named_report(name: str, preset: str, results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """The study's report (HTML, Markdown) from results.json's content."""
    from gendet.report.study import build_study_report

    cls = study_class(name, preset)
    return build_study_report(results, out_dir, cls.title, cls.report_sections)
