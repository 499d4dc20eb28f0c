"""Optional dependencies: which `pip install 'gendet[EXTRA]'` brings a module, and one clear line when it is missing.

`pip install gendet` alone scans, trains and benchmarks; the HTTP server, CLIP-based detectors, Ray,
ONNX and watermark decoding are extras, imported only where they are used (`require`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# top-level module -> (extra, PyPI package)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "fastapi": ("serve", "fastapi"),
    "starlette": ("serve", "fastapi"),
    "uvicorn": ("serve", "uvicorn[standard]"),
    "httptools": ("serve", "uvicorn[standard]"),
    "multipart": ("serve", "python-multipart"),
    "python_multipart": ("serve", "python-multipart"),
    "swagger_ui_bundle": ("serve", "swagger-ui-bundle"),
    "open_clip": ("clip", "open_clip_torch"),
    "ray": ("ray", "ray[data]"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "imwatermark": ("watermark", "invisible-watermark"),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def install_hint(module: str, purpose: str) -> str:
    top = module.split(".")[0]
    extra, package = EXTRA_OF.get(top, ("", top))
    how = f"pip install 'gendet[{extra}]'" if extra else f"pip install {package}"
    return f"{purpose} needs {package}, which is not installed: {how}"


def require(module: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtra saying which extra brings it (`purpose`: what needs it)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] not in EXTRA_OF:
            raise  # a broken install of something else: keep the real traceback
        raise MissingExtra(install_hint(e.name, purpose)) from e


def missing_extra_message(error: BaseException) -> str | None:
    """The one-line hint for an ImportError of an optional module raised anywhere, or None."""
    if isinstance(error, MissingExtra):
        return str(error)
    name = getattr(error, "name", None)
    if isinstance(error, ModuleNotFoundError) and name and name.split(".")[0] in EXTRA_OF:
        return install_hint(name, "this command")
    return None
