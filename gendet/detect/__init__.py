"""Scanning files and folders of any size with a detector (the engine of `gendet detect`).

- inputs.py: command-line inputs -> a lazy stream of paths (files, folders, globs, @LIST, stdin).
- model.py: the checkpoint to use (the shipped default unless told otherwise), its preprocessing and threshold.
- prepare.py: what a decoder process does per file (`ScanTask`: model input + provenance from one read).
- pipeline.py: decoder processes decode (a dead one costs only its file), the main process runs the model,
  records come out in input order.
- writers.py: JSONL / CSV records streamed per batch, and the resume reader.
- scan.py: `scan(...)`, the whole thing behind one call.
"""

from gendet.detect.inputs import IMAGE_EXTENSIONS, Input, InputStats, iter_inputs, walk_folder
from gendet.detect.model import ModelSetupError, ScanModel, default_checkpoint_dir, load_scan_model, resolve_device
from gendet.detect.pipeline import ScanSummary, iter_record_batches
from gendet.detect.prepare import PROVENANCE_MODES, ScanTask
from gendet.detect.scan import ScanResult, scan
from gendet.detect.writers import FIELDS, OutputError, Record, open_writer, read_done_paths

__all__ = [
    "FIELDS",
    "IMAGE_EXTENSIONS",
    "Input",
    "InputStats",
    "ModelSetupError",
    "OutputError",
    "PROVENANCE_MODES",
    "Record",
    "ScanModel",
    "ScanResult",
    "ScanSummary",
    "ScanTask",
    "default_checkpoint_dir",
    "iter_inputs",
    "iter_record_batches",
    "load_scan_model",
    "open_writer",
    "read_done_paths",
    "resolve_device",
    "scan",
    "walk_folder",
]
