"""Generator text chunks: A1111/Forge/sd.cpp parameters, ComfyUI graphs, NovelAI, InvokeAI, Fooocus, software names."""

from __future__ import annotations

import json

import pytest

from gendet.provenance.generators import software_finding, text_findings
from provenance.helpers import comfy_prompt


def one(items):
    (f,) = text_findings([(k, v, False) for k, v in items])
    return f


@pytest.mark.parametrize("version,tool", [("v1.10.1", "AUTOMATIC1111-compatible"), ("f2.0.1v1.10.1-previous-1",
                                          "Forge"), ("stable-diffusion.cpp", "stable-diffusion.cpp")])
def test_a1111_style_parameters_name_the_tool_and_model(version, tool) -> None:
    f = one([("parameters", f"a castle\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, Model: dreamshaper_8, "
                            f"Version: {version}")])
    assert (f.says, f.strength, f.generator, f.model, f.error) == ("generated", "declared", tool, "dreamshaper_8", None)


def test_parameters_that_are_not_generation_settings_say_nothing() -> None:
    assert text_findings([("parameters", "exposure +1", False)]) == []


def test_comfyui_graph_names_the_checkpoint() -> None:
    f = one([("prompt", comfy_prompt("flux1-dev.safetensors")), ("workflow", json.dumps({"nodes": []}))])
    assert (f.generator, f.model, f.strength, f.error) == ("ComfyUI", "flux1-dev.safetensors", "declared", None)


def test_a_deeply_nested_or_broken_workflow_is_a_finding_with_an_error() -> None:
    deep = "[" * 200_000 + "]" * 200_000
    f = one([("workflow", deep)])
    assert f.generator == "ComfyUI" and f.error and "deeply" in f.error and not f.decisive
    g = one([("prompt", "{not json")])
    assert g.error and "malformed JSON" in g.error


def test_a_text_cut_at_the_budget_is_not_parsed() -> None:
    (f,) = text_findings([("prompt", "{", True)])
    assert f.error and "too large" in f.error


def test_novelai_invokeai_and_fooocus() -> None:
    assert one([("Software", "NovelAI"), ("Source", "NovelAI Diffusion V3 7BCCAA2C")]).model.startswith("NovelAI")
    f = one([("invokeai_metadata", json.dumps({"model": {"name": "juggernautXL"}}))])
    assert (f.generator, f.model) == ("InvokeAI", "juggernautXL")
    f = one([("fooocus_scheme", "fooocus"), ("parameters", json.dumps({"base_model": "juggernautXL_v8"}))])
    assert (f.generator, f.model) == ("Fooocus", "juggernautXL_v8")


@pytest.mark.parametrize("value,says", [("Adobe Firefly", "generated"), ("Midjourney v6", "generated"),
                                        ("Adobe Photoshop CC 2017 (Macintosh)", "edited"), ("paint.net 5.0", "edited"),
                                        ("ARKive Website Media Generator 1.1.7.0", None), ("PhotoScape", "edited"),
                                        ("gnome-screenshot", None), ("Imagenomic Portraiture", None)])
def test_software_names(value, says) -> None:
    f = software_finding(value, "EXIF Software")
    assert (f.says if f else None) == says
    if f is not None and says == "edited":
        assert f.strength == "heuristic" and not f.decisive
