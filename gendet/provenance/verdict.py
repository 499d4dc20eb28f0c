"""One rule that combines the pixel score with provenance findings into a verdict and its reason.

1. A decisive finding (signed, declared or embedded; readable; says generated or edited) sets the verdict
   whatever the pixel score: "generated" if any says generated, else "edited".
2. Otherwise the pixel label decides: "generated" iff score >= threshold, else "real".
3. Without a pixel score (`--provenance only`, or pixels that could not be decoded) and no decisive
   finding: "unknown". Absence of provenance says nothing: metadata vanishes on re-encoding or a screenshot.
Conflicts are reported, never hidden: a decisive finding against a "real" pixel label, a captured claim
against a generated verdict, and two decisive findings that disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gendet.provenance.findings import Finding

VERDICTS = ("generated", "edited", "real", "unknown")


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str
    conflict: str | None = None


def _name(f: Finding) -> str:
    return f"{f.signal} ({f.strength}{', ' + f.generator if f.generator else ''})"


def decide(score: float | None, threshold: float, findings: Sequence[Finding] | None) -> Decision:
    """The verdict for one image (see the module docstring)."""
    findings = list(findings or [])
    decisive = [f for f in findings if f.decisive]
    pixel = None if score is None else ("generated" if score >= threshold else "real")
    pixel_text = None if score is None else f"pixel score {score:.4f} {'>=' if pixel == 'generated' else '<'} " \
                                            f"threshold {threshold:.4f}"
    conflicts: list[str] = []
    if decisive:
        verdict = "generated" if any(f.says == "generated" for f in decisive) else "edited"
        lead = [f for f in decisive if f.says == verdict]
        reason = f"provenance: {'; '.join(_name(f) for f in lead)} says {verdict}"
        if pixel == "real":
            conflicts.append(f"the pixels say real ({pixel_text})")
        elif pixel_text:
            reason += f"; {pixel_text} agrees"
    elif pixel is not None:
        verdict, reason = pixel, str(pixel_text)
    else:
        verdict, reason = "unknown", "no pixel score and no decisive provenance"
    if verdict == "generated":
        captured = [f for f in findings if f.says == "captured" and f.error is None]
        if captured:
            conflicts.append(f"{'; '.join(_name(f) for f in captured)} says captured")
    if decisive and {f.says for f in decisive} == {"generated", "edited"}:
        conflicts.append("provenance says both generated and edited")
    return Decision(verdict, reason, "; ".join(conflicts) or None)
