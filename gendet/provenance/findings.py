"""What a file says about where it came from: one `Finding` per signal.

A finding never decides anything by itself; `gendet.provenance.verdict` combines findings with the
pixel score by one documented rule. `strength` says how much a finding can be trusted:

- signed: a C2PA manifest whose signature validates and whose signer is in the trust list given;
- declared: metadata the generating software wrote (a text chunk, XMP, a C2PA manifest whose signer
  is not trusted here). Near-certain when present, trivially removed or forged;
- embedded: an invisible watermark decoded to a known payload;
- heuristic: weak hints (camera EXIF, an editor's name); never decisive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Says = Literal["generated", "edited", "captured", "unknown"]
Strength = Literal["signed", "declared", "embedded", "heuristic"]
SAYS: tuple[str, ...] = ("generated", "edited", "captured", "unknown")
STRENGTHS: tuple[str, ...] = ("signed", "declared", "embedded", "heuristic")

# signal names (stable: they are record fields and CSV values)
C2PA = "c2pa"
SOURCE_TYPE = "iptc-digital-source-type"
AI_SYSTEM = "iptc-ai-system"
GENERATOR_METADATA = "generator-metadata"
SOFTWARE = "software-tag"
WATERMARK = "invisible-watermark"
CAMERA = "camera-exif"
CONTAINER = "metadata-container"  # the metadata itself could not be read (bad CRC, truncated box, ...)


@dataclass(frozen=True)
class Finding:
    """One signal. `error` is set when the signal was present but could not be read or does not validate:
    such a finding is reported, never decisive. `generator` / `model` are named when the metadata states them."""

    signal: str
    says: Says
    strength: Strength
    detail: str
    error: str | None = None
    generator: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.says not in SAYS or self.strength not in STRENGTHS:
            raise ValueError(f"finding {self.signal}: says={self.says!r} strength={self.strength!r}")

    @property
    def decisive(self) -> bool:
        """Strong enough to set the verdict: signed, declared or embedded, readable, and generated/edited."""
        return self.error is None and self.strength != "heuristic" and self.says in ("generated", "edited")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**{k: d.get(k) for k in ("signal", "says", "strength", "detail", "error", "generator", "model")})


def clip(text: str, n: int = 160) -> str:
    """A value shortened for a detail line (prompts can be kilobytes)."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
