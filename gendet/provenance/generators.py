"""Generator metadata in text chunks (PNG tEXt/zTXt/iTXt, WebP/JPEG EXIF UserComment), and software names.

What each tool writes (from their source and sample files):
- AUTOMATIC1111, Forge, SD.Next, stable-diffusion.cpp: `parameters` = "prompt\\nNegative prompt: ...\\n
  Steps: 20, Sampler: ..., Model: NAME, ..., Version: V" (Forge's version starts with "f", sd.cpp's is
  "stable-diffusion.cpp"); in JPEG/WebP the same text is the EXIF UserComment;
- Fooocus: `parameters` as JSON plus `fooocus_scheme`;
- ComfyUI: `prompt` (the executed node graph, JSON) and `workflow` (the editor graph, JSON);
- NovelAI: `Software` = "NovelAI", `Source` = the model, `Comment` = JSON settings;
- InvokeAI: `invokeai_metadata` / `invokeai_graph` (3.x+), `sd-metadata` (2.x), `Dream` (1.x).
JSON is parsed within the text budget (container.MAX_TEXT_BYTES); a deeply nested or broken document is
a finding with an error, never an exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gendet.provenance.findings import GENERATOR_METADATA, SOFTWARE, Finding, clip

# Software names that only generators write (whole words; "Media Generator" or "Imagen..." are not here).
GENERATOR_NAMES: tuple[tuple[str, str], ...] = (
    ("NovelAI", r"\bnovel\s?ai\b"), ("Midjourney", r"\bmidjourney\b"), ("DALL-E", r"\bdall[\s·\-]?e\b"),
    ("Adobe Firefly", r"\bfirefly\b"), ("Stable Diffusion", r"\bstable[\s_\-]?diffusion\b"),
    ("ComfyUI", r"\bcomfy\s?ui\b"), ("AUTOMATIC1111", r"\bautomatic1111\b"), ("InvokeAI", r"\binvoke\s?ai\b"),
    ("Fooocus", r"\bfooocus\b"), ("Draw Things", r"\bdraw things\b"), ("DiffusionBee", r"\bdiffusion\s?bee\b"),
    ("Leonardo.Ai", r"\bleonardo\.ai\b"), ("Ideogram", r"\bideogram\b"), ("ChatGPT", r"\bchatgpt\b"),
    ("OpenAI", r"\bopenai\b"), ("Bing Image Creator", r"\bbing image creator\b"), ("SD.Next", r"\bsd\.next\b"),
)
# Editors: a hint that the file was edited (by a person or a tool), never that it was generated.
EDITOR_NAMES: tuple[tuple[str, str], ...] = (
    ("Adobe Photoshop", r"\bphotoshop\b"), ("Adobe Lightroom", r"\blightroom\b"), ("GIMP", r"\bgimp\b"),
    ("paint.net", r"\bpaint\.net\b"), ("Affinity Photo", r"\baffinity photo\b"), ("Pixelmator", r"\bpixelmator\b"),
    ("Snapseed", r"\bsnapseed\b"), ("PhotoScape", r"\bphotoscape\b"), ("darktable", r"\bdarktable\b"),
    ("RawTherapee", r"\brawtherapee\b"), ("Capture One", r"\bcapture one\b"), ("Luminar", r"\bluminar\b"),
)
_GENERATOR_RE = tuple((name, re.compile(rx, re.I)) for name, rx in GENERATOR_NAMES)
_EDITOR_RE = tuple((name, re.compile(rx, re.I)) for name, rx in EDITOR_NAMES)

_A1111_STEPS = re.compile(r"(?:^|\n)Steps: \d+")
_A1111_FIELD = re.compile(r"(?:^|, |\n)(Model|Version): ([^,\n]+)")
_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name", "gguf_name", "model")


def software_finding(value: str, where: str) -> Finding | None:
    """A `Software`/`CreatorTool` value naming a generator (declared) or an editor (heuristic edited)."""
    for name, rx in _GENERATOR_RE:
        if rx.search(value):
            return Finding(SOFTWARE, "generated", "declared", f"{where} names {name}: {clip(value, 80)}",
                           generator=name)
    for name, rx in _EDITOR_RE:
        if rx.search(value):
            return Finding(SOFTWARE, "edited", "heuristic", f"{where} names the editor {name}: {clip(value, 80)} "
                           "(says nothing about how the image was made)")
    return None


def _json(value: str, cut: bool) -> tuple[Any, str | None]:
    if cut:
        return None, "too large to parse within the metadata budget"
    try:
        return json.loads(value), None
    except RecursionError:
        return None, "JSON nested too deeply to parse"
    except ValueError as e:
        return None, f"malformed JSON: {clip(str(e), 80)}"


def a1111_parameters(text: str, where: str) -> Finding | None:
    """The A1111-style parameters block (also sd.cpp, Forge, SD.Next); None if `text` is not one."""
    if not _A1111_STEPS.search(text):
        return None
    fields = {k: v.strip() for k, v in _A1111_FIELD.findall(text)}
    version = fields.get("Version", "")
    if "stable-diffusion.cpp" in version:
        tool = "stable-diffusion.cpp"
    elif version.startswith("f") and version[1:2].isdigit():
        tool = "Forge"
    else:  # A1111 and SD.Next write the same fields
        tool = "AUTOMATIC1111-compatible"
    model = fields.get("Model")
    prompt = text.split("\n", 1)[0]
    return Finding(GENERATOR_METADATA, "generated", "declared",
                   f"{where}: {tool} generation parameters" + (f", model {model}" if model else "")
                   + f"; prompt {clip(prompt, 80)!r}", generator=tool, model=model)


def _comfy_model(graph: Any) -> str | None:
    """The checkpoint/UNet a ComfyUI prompt graph loads, if it names one."""
    if not isinstance(graph, dict):
        return None
    for node in graph.values():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            for key in _MODEL_INPUTS:
                value = node["inputs"].get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def _comfy(texts: dict[str, tuple[str, bool]], where: str) -> Finding:
    graph, error = _json(*texts["prompt"]) if "prompt" in texts else (None, None)
    if error is None and "workflow" in texts and graph is None:
        _, error = _json(*texts["workflow"])
    if error is None and graph is not None and not isinstance(graph, dict):
        error = "prompt chunk is not a node graph"
    model = _comfy_model(graph) if error is None else None
    keys = " and ".join(repr(k) for k in ("prompt", "workflow") if k in texts)
    detail = f"{where} {keys}: ComfyUI node graph" + (f", model {model}" if model else "")
    # The chunk names are ComfyUI's own, so even an unreadable graph declares the tool; the error says what failed.
    return Finding(GENERATOR_METADATA, "generated", "declared", detail, error=error, generator="ComfyUI", model=model)


def _fooocus(texts: dict[str, tuple[str, bool]], where: str) -> Finding:
    params, error = _json(*texts["parameters"]) if "parameters" in texts else (None, None)
    model = params.get("base_model") if isinstance(params, dict) else None
    return Finding(GENERATOR_METADATA, "generated", "declared", f"{where} 'fooocus_scheme': Fooocus parameters"
                   + (f", model {model}" if model else ""), error=error, generator="Fooocus",
                   model=model if isinstance(model, str) else None)


def _invokeai(texts: dict[str, tuple[str, bool]], key: str, where: str) -> Finding:
    meta, error = _json(*texts[key]) if key != "Dream" else ({}, None)
    model = None
    if isinstance(meta, dict):
        m = meta.get("model")
        model = m.get("model_name") or m.get("name") if isinstance(m, dict) else m
    return Finding(GENERATOR_METADATA, "generated", "declared", f"{where} {key!r}: InvokeAI metadata"
                   + (f", model {model}" if isinstance(model, str) else ""), error=error, generator="InvokeAI",
                   model=model if isinstance(model, str) else None)


def text_findings(items: list[tuple[str, str, bool]], where: str = "text chunk") -> list[Finding]:
    """Findings from (key, value, cut) text items (see the module docstring for what is recognised)."""
    texts = {k: (v, cut) for k, v, cut in items}
    out: list[Finding] = []
    if "prompt" in texts or "workflow" in texts:
        out.append(_comfy(texts, where))
    if "fooocus_scheme" in texts:
        out.append(_fooocus(texts, where))
    elif "parameters" in texts:
        found = a1111_parameters(texts["parameters"][0], f"{where} 'parameters'")
        if found is not None:
            out.append(found)
        elif texts["parameters"][0].lstrip().startswith("{"):  # JSON parameters: Fooocus without its scheme key
            out.append(Finding(GENERATOR_METADATA, "generated", "declared", f"{where} 'parameters': JSON "
                               "generation parameters", generator="unknown"))
    for key in ("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream"):
        if key in texts:
            out.append(_invokeai(texts, key, where))
            break
    if "Software" in texts and texts["Software"][0].strip().lower().startswith("novelai"):
        source = texts.get("Source", ("", False))[0].strip() or None
        out.append(Finding(GENERATOR_METADATA, "generated", "declared", f"{where} 'Software' = NovelAI"
                           + (f", source {source}" if source else ""), generator="NovelAI", model=source))
    elif "Software" in texts:
        found = software_finding(texts["Software"][0], f"{where} 'Software'")
        if found is not None:
            out.append(found)
    return out
