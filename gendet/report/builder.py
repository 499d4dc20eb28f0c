"""A small document model that renders to one self-contained HTML file and to Markdown.

HTML: inline CSS, every image embedded as a base64 `data:` URI, a table of
contents of in-page anchors; nothing is fetched from anywhere. Markdown: images
are written to `<name>_files/` next to the .md file and linked relatively.
All user-provided text (subset names, paths, commands) is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from gendet.report.plots import image_to_png
from gendet.version import VERSION

Cell = Any


@dataclass
class _Block:
    kind: str  # heading | text | note | code | table | figure | images | provenance
    data: dict[str, Any] = field(default_factory=dict)


def format_value(v: Cell, digits: int = 3) -> str:
    """Numbers to fixed decimals, None/NaN to an en dash, everything else to str."""
    if v is None:
        return "\u2013"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "\u2013"
        # tiny non-zero values (learning rates) keep two significant digits instead of showing 0.000
        return f"{v:.2g}" if v != 0 and abs(v) < 10**-digits else f"{v:.{digits}f}"
    return str(v)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def md_escape(text: str) -> str:
    """Markdown-safe one-line text: HTML entities for <>&, backslash escapes for inline markup characters."""
    out = _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")
    # a leading block marker (heading, list, quote) would turn the text into structure
    return "\\" + out if out[:1] in ("#", "-", "+", ">") else out


def _md_code_block(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9;
line-height:1.45;font-size:15px}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:26px;margin:8px 0 4px}
h2{font-size:20px;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid #e3e6eb}
h3{font-size:16px;margin:22px 0 8px} .meta{color:#667;font-size:13px}
nav.toc{background:#f2f4f7;border:1px solid #e3e6eb;border-radius:6px;padding:10px 18px;margin:16px 0;font-size:14px}
nav.toc ol{margin:4px 0;padding-left:22px} nav.toc a{color:#1f5fbf;text-decoration:none}
nav.toc a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #dde1e7;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#eef1f5;font-weight:600} tr:nth-child(even) td{background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;color:#556;font-size:13px;padding:2px 0 4px}
figure{margin:12px 0 18px} figure img{max-width:100%;height:auto;border:1px solid #eceef2}
figcaption{color:#556;font-size:13px;margin-top:4px}
.note{background:#fff8e5;border-left:4px solid #f0b429;padding:6px 12px;margin:10px 0;font-size:14px}
pre{background:#f2f4f7;border:1px solid #e3e6eb;border-radius:4px;padding:8px 10px;overflow-x:auto;font-size:12.5px;
white-space:pre-wrap;overflow-wrap:anywhere}
.prov{border:1px solid #dfe6f0;background:#f7faff;border-radius:6px;padding:6px 12px;margin:8px 0 14px;font-size:12.5px}
.prov b{color:#345} .prov code{font-size:12px;overflow-wrap:anywhere}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(132px,1fr));gap:10px;margin:8px 0 16px}
.thumbs figure{margin:0;text-align:center;background:#fafbfc;border:1px solid #eceef2;border-radius:4px;padding:6px}
.thumbs img{width:112px;height:112px;object-fit:contain;border:none;image-rendering:auto}
.thumbs figcaption{font-size:11.5px;white-space:pre-line;overflow-wrap:anywhere;line-height:1.3}
"""


class ReportBuilder:
    """Collects headings, text, tables, figures and image grids; writes HTML and Markdown."""

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[_Block] = []
        self._slugs: set[str] = set()

    # ---- content -------------------------------------------------------------------------
    def add_heading(self, text: str, level: int = 2) -> str:
        """A section heading (level 2 or 3 appear in the table of contents); returns its anchor id."""
        anchor = _slug(text, self._slugs)
        self.blocks.append(_Block("heading", {"text": str(text), "level": max(2, min(4, level)), "id": anchor}))
        return anchor

    def add_text(self, text: str) -> None:
        self.blocks.append(_Block("text", {"text": str(text)}))

    def add_note(self, text: str) -> None:
        """A highlighted remark, e.g. why a section is missing."""
        self.blocks.append(_Block("note", {"text": str(text)}))

    def add_code(self, text: str) -> None:
        self.blocks.append(_Block("code", {"text": str(text)}))

    def add_table(
        self,
        rows: Sequence[Mapping[str, Cell]] | Sequence[Sequence[Cell]],
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        digits: int = 3,
        align_numbers: bool = True,
    ) -> None:
        """Rows as dicts (columns = union of keys, or `columns`) or as lists with `columns` as header."""
        rows = list(rows)
        if rows and isinstance(rows[0], Mapping):
            if columns is None:
                columns = []
                for r in rows:
                    columns += [k for k in r if k not in columns]
            body = [[r.get(c) for c in columns] for r in rows]  # type: ignore[union-attr]
        else:
            body = [list(r) for r in rows]
        cols = [str(c) for c in (columns or [])]
        self.blocks.append(_Block("table", {"columns": cols, "rows": body, "caption": caption, "digits": digits,
                                            "align_numbers": align_numbers}))

    def add_key_values(
        self, items: Mapping[str, Cell] | Sequence[tuple[str, Cell]], caption: str | None = None
    ) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self.add_table([[k, v] for k, v in pairs], columns=["", ""], caption=caption, align_numbers=False)

    def add_figure(self, png: bytes, caption: str = "", alt: str | None = None) -> None:
        self.blocks.append(_Block("figure", {"png": png, "caption": caption, "alt": alt or caption}))

    def add_images(self, items: Sequence[tuple[bytes | Image.Image, str]], caption: str | None = None) -> None:
        """A grid of small images (PNG bytes or PIL images), each with its caption."""
        pngs = [(image_to_png(im) if isinstance(im, Image.Image) else im, str(c)) for im, c in items]
        self.blocks.append(_Block("images", {"items": pngs, "caption": caption}))

    def add_provenance(self, entries: Sequence[Mapping[str, Cell]]) -> None:
        """What produced the numbers of a section: per entry a label, command, seed and alignment (plus any extra)."""
        self.blocks.append(_Block("provenance", {"entries": [dict(e) for e in entries]}))

    # ---- HTML ----------------------------------------------------------------------------
    def _toc_html(self) -> str:
        items, open_sub = [], False
        for b in self.blocks:
            if b.kind != "heading" or b.data["level"] > 3:
                continue
            link = f'<a href="#{b.data["id"]}">{html.escape(b.data["text"])}</a>'
            if b.data["level"] == 2:
                if open_sub:
                    items.append("</ol></li>")
                    open_sub = False
                elif items:
                    items.append("</li>")
                items.append(f"<li>{link}")
            else:
                if not open_sub:
                    items.append("<ol>")
                    open_sub = True
                items.append(f"<li>{link}</li>")
        if not items:
            return ""
        items.append("</ol></li>" if open_sub else "</li>")
        return '<nav class="toc"><b>Contents</b><ol>' + "".join(items) + "</ol></nav>"

    @staticmethod
    def _data_uri(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    def _block_html(self, b: _Block) -> str:
        d, esc = b.data, html.escape
        if b.kind == "heading":
            lvl = d["level"]
            return f'<h{lvl} id="{d["id"]}">{esc(d["text"])}</h{lvl}>'
        if b.kind == "text":
            return f"<p>{esc(d['text'])}</p>"
        if b.kind == "note":
            return f'<div class="note">{esc(d["text"])}</div>'
        if b.kind == "code":
            return f"<pre>{esc(d['text'])}</pre>"
        if b.kind == "table":
            return _table_html(d)
        if b.kind == "figure":
            cap = f"<figcaption>{esc(d['caption'])}</figcaption>" if d["caption"] else ""
            return f'<figure><img src="{self._data_uri(d["png"])}" alt="{esc(d["alt"])}">{cap}</figure>'
        if b.kind == "images":
            cells = [
                f'<figure><img src="{self._data_uri(png)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'
                for png, c in d["items"]
            ]
            cap = f'<p class="meta">{esc(d["caption"])}</p>' if d["caption"] else ""
            return cap + '<div class="thumbs">' + "".join(cells) + "</div>"
        if b.kind == "provenance":
            return _provenance_html(d)
        raise ValueError(f"unknown block kind {b.kind}")

    def to_html(self) -> str:
        esc = html.escape
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sub = f'<p class="meta">{esc(self.subtitle)}</p>' if self.subtitle else ""
        body = "\n".join(self._block_html(b) for b in self.blocks)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{esc(self.title)}</h1>{sub}"
            f'<p class="meta">Generated by gendet {esc(VERSION)} on {stamp}. '
            "Labels: 1 = generated, 0 = real; scores are P(generated).</p>"
            f"{self._toc_html()}\n{body}\n</main></body></html>\n"
        )

    def write_html(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_html(), encoding="utf-8")
        return p

    # ---- Markdown ------------------------------------------------------------------------
    def write_md(self, path: str | os.PathLike) -> Path:
        """Write Markdown; images go to `<stem>_files/` (e.g. report_files/) next to it."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        assets = p.parent / f"{p.stem}_files"
        n_img = 0

        def save(png: bytes) -> str:
            nonlocal n_img
            n_img += 1
            assets.mkdir(parents=True, exist_ok=True)
            name = f"img_{n_img:03d}.png"
            (assets / name).write_bytes(png)
            return f"{assets.name}/{name}"

        out = [f"# {md_escape(self.title)}", ""]
        if self.subtitle:
            out += [md_escape(self.subtitle), ""]
        out += [f"Generated by gendet {md_escape(VERSION)}. Labels: 1 = generated, 0 = real; "
                "scores are P(generated).", ""]
        toc = [b for b in self.blocks if b.kind == "heading" and b.data["level"] <= 3]
        if toc:
            out.append("**Contents**")
            out.append("")
            for b in toc:
                indent = "  " * (b.data["level"] - 2)
                out.append(f"{indent}- [{md_escape(b.data['text'])}](#{b.data['id']})")
            out.append("")
        for b in self.blocks:
            out += _block_md(b, save)
            out.append("")
        p.write_text("\n".join(out), encoding="utf-8")
        return p


def _block_md(b: _Block, save: Callable[[bytes], str]) -> list[str]:
    """One block as Markdown lines; `save(png)` stores an image and returns its relative path."""
    d, out = b.data, []
    if b.kind == "heading":
        out += [f'<a id="{d["id"]}"></a>', "", f"{'#' * d['level']} {md_escape(d['text'])}"]
    if b.kind == "text":
        out.append(md_escape(d["text"]))
    if b.kind == "note":
        out.append(f"> **Note:** {md_escape(d['text'])}")
    if b.kind == "code":
        out.append(_md_code_block(d["text"]))
    if b.kind == "table":
        out += _table_md(d)
    if b.kind == "figure":
        out.append(f"![{md_escape(d['alt'])}]({save(d['png'])})")
        if d["caption"]:
            out += ["", f"*{md_escape(d['caption'])}*"]
    if b.kind == "images":
        if d["caption"]:
            out += [md_escape(d["caption"]), ""]
        out += [f"![{md_escape(c)}]({save(png)}) {md_escape(c)}  " for png, c in d["items"]]
    if b.kind == "provenance":
        out += ["Produced by:", ""]
        for e in d["entries"]:
            e = dict(e)
            label, cmd = e.pop("label", ""), e.pop("command", None)
            extras = ", ".join(f"{md_escape(k)}: {md_escape(format_value(v))}" for k, v in e.items())
            cmd_s = format_value(cmd).replace("`", "'")
            out.append(f"- **{md_escape(label)}** {extras}; command: `{cmd_s}`")
    return out


def _table_md(d: dict[str, Any]) -> list[str]:
    out = [f"*{md_escape(d['caption'])}*", ""] if d["caption"] else []
    cols = d["columns"] if any(d["columns"]) else [" "] * len(d["columns"] or (d["rows"] or [[]])[0])
    out.append("| " + " | ".join(md_escape(c) for c in cols) + " |")
    out.append("|" + "|".join("---" for _ in cols) + "|")
    out += ["| " + " | ".join(md_escape(format_value(v, d["digits"])) for v in row) + " |" for row in d["rows"]]
    return out


def _table_html(d: dict[str, Any]) -> str:
    esc = html.escape
    out = ["<table>"]
    if d["caption"]:
        out.append(f"<caption>{esc(d['caption'])}</caption>")
    if any(d["columns"]):
        out.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in d["columns"]) + "</tr></thead>")
    out.append("<tbody>")
    for row in d["rows"]:
        cells = []
        for v in row:
            num = d["align_numbers"] and isinstance(v, int | float) and not isinstance(v, bool)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{esc(format_value(v, d['digits']))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _provenance_html(d: dict[str, Any]) -> str:
    esc = html.escape
    lines = []
    for e in d["entries"]:
        e = dict(e)
        label = e.pop("label", "")
        cmd = e.pop("command", None)
        parts = [f"<b>{esc(str(label))}</b>"] if label else []
        parts += [f"{esc(str(k))}: <code>{esc(format_value(v))}</code>" for k, v in e.items()]
        parts.append(f"command: <code>{esc(format_value(cmd))}</code>")
        lines.append("<div>" + " &middot; ".join(parts) + "</div>")
    return '<div class="prov"><div class="meta">Produced by</div>' + "".join(lines) + "</div>"
