"""Manipulation-augmented data (GAMMA): real images with generated or copied parts, masks kept.

- `codes`: how a pixel's source is stored (PNG values) and read back;
- `shapes`: mask shapes (random boxes, free-form strokes, object-like blobs);
- `edits`: copy-move, splicing and the label-neutral whole-image perturbations.

Regenerating a masked region with a flow generator is `gendet.generation.inpaint`; the cached, seeded
`manipulated` subset built from all of these is `gendet.bench.manipulated`.
Only `codes` is imported here: the dataset needs it.
"""

from gendet.data.manipulations.codes import (
    SOURCE_COPIED,
    SOURCE_GENERATED,
    SOURCE_NAMES,
    SOURCE_REAL,
    decode_source_map,
    encode_source_map,
)

__all__ = ["SOURCE_COPIED", "SOURCE_GENERATED", "SOURCE_NAMES", "SOURCE_REAL", "decode_source_map",
           "encode_source_map"]
