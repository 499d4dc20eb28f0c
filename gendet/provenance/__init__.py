"""Provenance: what a file says about its origin (C2PA, IPTC/XMP, EXIF, generator text chunks, invisible
watermarks), as findings beside the pixel score, and the one rule that combines them (`decide`).

The pixel detector never sees any of this: decoding (`gendet.data.decode`) returns pixels only.
"""

from gendet.provenance.findings import Finding
from gendet.provenance.reader import ProvenanceOptions, read_provenance
from gendet.provenance.verdict import Decision, decide

__all__ = ["Decision", "Finding", "ProvenanceOptions", "decide", "read_provenance"]
