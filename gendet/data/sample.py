"""The unit of data that flows through gendet: one image file and what is known about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One labelled image on disk.

    label: 1 = generated, 0 = real, None = unknown (scanning).
    split: "train", "val" or "test" (GenImage's `val` folders are its test set).
    generator: the subset / generator family name ("" when the layout has none).
    group: what must never straddle two splits (e.g. the source photo of a crop).
    mask: optional path to a pixel mask (white = manipulated).
    explanation: optional reference explanation text (FakeClue-style data).
    """

    path: Path
    label: int | None
    split: str = "train"
    generator: str = ""
    group: str = ""
    mask: Path | None = None
    explanation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["mask"] = str(self.mask) if self.mask else None
        return d
