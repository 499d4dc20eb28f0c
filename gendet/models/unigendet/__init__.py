"""UniGenDet: one mixture-of-transformers model that generates and detects (SMSA, GDUF, DIGA)."""

from gendet.models.unigendet.model import UniGenDet

__all__ = ["UniGenDet"]
