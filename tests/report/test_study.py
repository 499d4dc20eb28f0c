from __future__ import annotations

from gendet.report.builder import ReportBuilder
from gendet.report.study import add_claims, plus_minus


def test_plus_minus() -> None:
    assert plus_minus({"mean": None, "ci95": None}) == "–"
    assert "±" in plus_minus({"mean": 0.5, "ci95": 0.01})
    assert "±" not in plus_minus({"mean": 0.5, "ci95": None})


def test_claims_table_has_a_relative_column_only_when_a_claim_has_one(tmp_path) -> None:
    plain = {"a beats b": {"full": 0.9, "ablated": 0.8, "holds": True, "p_value": 0.01}}
    with_rel = {**plain, "kid drops": {"full": 0.3, "ablated": 0.4, "holds": True, "p_value": None,
                                       "relative_reduction": 0.25}}
    for claims, has_rel in ((plain, False), (with_rel, True)):
        rb = ReportBuilder("t")
        add_claims(rb, claims, "claims")
        md = rb.write_md(tmp_path / "r.md").read_text()
        assert ("relative" in md) == has_rel
        assert "a beats b" in md and "p (Welch, seeds)" in md
