"""HRR: multi-scale retrospection with a flow model, a fusion network and additive feature refinement."""

from gendet.models.hrr.model import HRR, RetrospectionDetector

__all__ = ["HRR", "RetrospectionDetector"]
