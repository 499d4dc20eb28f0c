"""Per-image evidence for a detector's verdict (`gendet explain`, and the server later).

`explain_image(detector, image, pp, threshold, ...) -> Evidence`; `Evidence.to_dict()` is JSON-ready;
`save_figure(evidence, path)` draws the heat-map figure.
"""

from gendet.explain.evidence import Evidence, Region, explain_image

__all__ = ["Evidence", "Region", "explain_image"]
