"""What every ablation study's report shares: a mean ± 95% interval cell, and the claims table."""

from __future__ import annotations

from typing import Any

from gendet.report.builder import ReportBuilder, format_value


def plus_minus(cell: dict[str, Any]) -> str:
    """'mean ± half-width' of an `interval` cell (gendet.bench.ablations), '–' without a mean."""
    mean, half = cell.get("mean"), cell.get("ci95")
    if mean is None:
        return "–"
    return format_value(mean) + ("" if half is None else f" ± {format_value(half)}")


def add_claims(rb: ReportBuilder, claims: dict[str, dict[str, Any]], caption: str) -> None:
    """One row per claim: the two means, the relative change where a claim has one, holds, Welch's p."""
    relative = any("relative_reduction" in r for r in claims.values())
    rb.add_table([{"claim": c, "full": r.get("full"), "ablated": r.get("ablated"),
                   **({"relative": r.get("relative_reduction")} if relative else {}),
                   "holds here": r.get("holds"), "p (Welch, seeds)": r.get("p_value")}
                  for c, r in claims.items()], caption=caption)
