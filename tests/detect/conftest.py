from __future__ import annotations

from pathlib import Path

import pytest

from detect.helpers import make_checkpoint
from gendet.detect import ScanModel, load_scan_model


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny_cnn checkpoint with preprocess/align/threshold in its config (threshold 0.65, 'val')."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", threshold=0.65, source="val", threshold_val=0.65)


@pytest.fixture(scope="session")
def scan_model(tiny_ckpt: Path) -> ScanModel:
    return load_scan_model(tiny_ckpt, "cpu")
