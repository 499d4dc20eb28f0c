from __future__ import annotations

from pathlib import Path

import pytest
from detect.helpers import make_checkpoint
from fastapi.testclient import TestClient

from gendet.detect import ScanModel, load_scan_model
from gendet.serve.app import create_app


@pytest.fixture(scope="session")
def serve_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny_cnn checkpoint (32 px, JPEG alignment) with threshold 0.65 from 'val'."""
    return make_checkpoint(tmp_path_factory.mktemp("serve_ckpt") / "tiny", threshold=0.65, source="val")


@pytest.fixture(scope="session")
def serve_model(serve_ckpt: Path) -> ScanModel:
    return load_scan_model(serve_ckpt, "cpu")


@pytest.fixture(scope="module")
def client(serve_model: ScanModel):
    """The app with default limits, started (lifespan run) once per module."""
    with TestClient(create_app(model=serve_model)) as c:
        yield c
