"""The web page in a real browser (Playwright + Debian's Chromium): upload a PNG through the file input,
the verdict, score, gauge, evidence and heat-map toggle appear. A screenshot goes to the test's tmp_path,
and also to $GENDET_TEST_ARTIFACTS (a folder; "1" means test-artifacts/ in the repo) when that is set."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from gendet.serve.app import create_app
from serve.helpers import image_bytes, running_server

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path | None:
    value = os.environ.get("GENDET_TEST_ARTIFACTS")
    if not value:
        return None
    return REPO / "test-artifacts" if value.lower() in ("1", "true", "yes") else Path(value)


def test_upload_through_the_page_shows_verdict(serve_model, tmp_path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install Debian's chromium to run the browser test)")
    image = tmp_path / "upload.png"
    image.write_bytes(image_bytes(96, 7))
    shot = tmp_path / "serve_page.png"
    with running_server(create_app(model=serve_model)) as url, sync_api.sync_playwright() as pw:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('modelinfo').textContent.includes('threshold')")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#verdict.fake, #verdict.real", timeout=60_000)
            page.wait_for_selector("#evidence-box:not([hidden])", timeout=60_000)
            verdict = page.text_content("#verdict") or ""
            score = page.text_content("#score") or ""
            assert re.search(r"\b(fake|real)\b", verdict.lower()), verdict
            assert re.search(r"score \d\.\d+", score) and "threshold 0.65" in score, score
            assert (page.text_content("#evidence") or "").startswith("Scored ")
            width = page.eval_on_selector("#gauge-fill", "e => parseFloat(e.style.width)")
            assert (width >= 50) == ("fake" in verdict.lower())  # the threshold sits in the gauge's middle
            assert page.is_visible("#heatmap")
            page.click("#heatmap-toggle")
            assert not page.is_visible("#heatmap")
            page.click("#heatmap-toggle")
            assert page.is_visible("#heatmap") and page.is_visible("#modelinput")
            page.screenshot(path=str(shot), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if (out := artifacts_dir()) is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / "serve_page.png")


def test_the_page_lists_provenance_findings(serve_model, tmp_path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install Debian's chromium to run the browser test)")
    from provenance.helpers import comfy_prompt, png_bytes, text, with_chunks

    image = tmp_path / "comfy.png"
    image.write_bytes(with_chunks(png_bytes(), text("prompt", comfy_prompt("flux1-dev.safetensors"))))
    with running_server(create_app(model=serve_model)) as url, sync_api.sync_playwright() as pw:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.uncheck("#explain")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#provenance-box:not([hidden])", timeout=60_000)
            assert "Likely generated" in (page.text_content("#verdict") or "")
            assert "generator-metadata: says generated (declared)" in (page.text_content("#provenance") or "")
            assert "flux1-dev.safetensors" in (page.text_content("#provenance") or "")
            assert (page.text_content("#prov-reason") or "").startswith("verdict: generated (provenance:")
        finally:
            browser.close()
