"""ReportBuilder: self-contained HTML (data URIs, in-page anchors), escaped text, Markdown with linked images."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from PIL import Image

from gendet.report import ReportBuilder, format_value

EVIL = '<script>alert("x")</script>'


def _png(color: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), color).save(buf, format="PNG")
    return buf.getvalue()


def urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)


def _builder() -> ReportBuilder:
    rb = ReportBuilder(f"Title {EVIL}", subtitle=EVIL)
    rb.add_heading("Results")
    rb.add_heading(f"Subset {EVIL}", level=3)
    rb.add_heading("Results")  # duplicate title gets its own anchor
    rb.add_text(f"text {EVIL}")
    rb.add_note(EVIL)
    rb.add_code(f"gendet eval --data '{EVIL}' ```")
    rb.add_table([{"subset": EVIL, "acc": 0.91234, "auc": None, "n": 10}], caption=EVIL)
    rb.add_key_values({"seed": 3, EVIL: True})
    rb.add_figure(_png(), caption=EVIL)
    rb.add_images([(_png((1, 2, 3)), f"img {EVIL}"), (Image.new("RGB", (8, 8)), "pil")], caption="grid")
    rb.add_provenance([{"label": "clean", "seed": 7, "align": "jpeg", "command": f"gendet eval {EVIL}"}])
    return rb


def test_html_is_self_contained_and_escaped(tmp_path: Path):
    html = _builder().write_html(tmp_path / "r.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    found = urls(html)
    assert found and all(u.startswith("data:image/png;base64,") or u.startswith("#") for u in found)
    assert "http://" not in html and "https://" not in html
    # anchors of the table of contents exist and are unique
    anchors = [u[1:] for u in found if u.startswith("#")]
    ids = re.findall(r'id="([^"]+)"', html)
    assert set(anchors) <= set(ids) and len(ids) == len(set(ids))
    assert len(anchors) == 3 and "results-2" in ids
    # embedded images decode back to the PNGs
    data = [u.split(",", 1)[1] for u in found if u.startswith("data:")]
    assert len(data) == 3
    Image.open(io.BytesIO(base64.b64decode(data[0]))).load()
    assert "0.912" in html and "\u2013" in html  # 3 decimals, None as a dash


def test_markdown_links_written_images_and_escapes(tmp_path: Path):
    md_path = _builder().write_md(tmp_path / "report.md")
    md = md_path.read_text()
    # code blocks and spans are rendered literally; everywhere else markup must be escaped
    prose = re.sub(r"`{3,}.*?`{3,}|`[^`\n]*`", "", md, flags=re.S)
    assert "<script" not in prose.lower() and "&lt;script&gt;" in prose
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 3
    for link in links:
        assert link.startswith("report_files/") and (tmp_path / link).is_file()
    assert "````" in md  # the fence is longer than the backtick run inside the command
    assert "- [Results](#results)" in md


def test_format_value():
    assert format_value(None) == "\u2013"
    assert format_value(float("nan")) == "\u2013"
    assert format_value(0.12345) == "0.123"
    assert format_value(3) == "3"
    assert format_value(True) == "yes"
