"""The explanation figure: model-input image, heat map with the top regions boxed, occlusion bars, text.

Drawn on an explicit Agg canvas (never pyplot), like gendet/report/plots.py, so no global
backend state changes and no figures are left open.
"""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from gendet.explain.evidence import Evidence, format_prob
from gendet.report.plots import fig_to_png, write_png

_RC = {"font.size": 8, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False}
HEAT_ALPHA = 0.5
TOP_COLOUR = "#00e5ff"


def render_figure(ev: Evidence) -> bytes:
    """PNG bytes of the explanation figure for one Evidence."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(12, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        gs = fig.add_gridspec(2, 3, height_ratios=[1.0, 0.16], width_ratios=[1.0, 1.0, 1.35])
        ax_img, ax_heat, ax_bar = (fig.add_subplot(gs[0, i]) for i in range(3))
        ax_text = fig.add_subplot(gs[1, :])

        h, w = ev.input_size
        ax_img.imshow(ev.image, interpolation="nearest")
        ax_img.set_title(f"model input ({w}x{h})")
        ax_heat.imshow(ev.image, interpolation="nearest")
        heat = ax_heat.imshow(ev.relevance, cmap="inferno", alpha=HEAT_ALPHA, vmin=0.0, vmax=1.0,
                              interpolation="bilinear")
        fig.colorbar(heat, ax=ax_heat, fraction=0.046, pad=0.02, label="relevance")
        for rank, r in enumerate(ev.top_regions, start=1):
            x0, y0, x1, y1 = r.box
            ax_heat.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=2,
                                        edgecolor=TOP_COLOUR))
            ax_heat.text(x0 + 0.5, y0 + 0.5, str(rank), color="black", fontsize=9, fontweight="bold", va="top",
                         ha="left", bbox={"facecolor": TOP_COLOUR, "edgecolor": "none", "pad": 1.0})
        ax_heat.set_title(f"{ev.relevance_source} relevance, top {len(ev.top)} regions")
        for ax in (ax_img, ax_heat):
            ax.set_xticks([])
            ax.set_yticks([])

        deltas = [r.occlusion_delta for r in ev.regions]
        rank_of = {i: k + 1 for k, i in enumerate(ev.top)}
        colours = ["#c0392b" if d > 0 else "#2e86c1" for d in deltas]
        ax_bar.bar(range(len(deltas)), deltas, color=colours)
        ax_bar.axhline(0.0, color="0.3", lw=0.8)
        for i, k in rank_of.items():
            ax_bar.annotate(str(k), (i, deltas[i]), ha="center", va="bottom" if deltas[i] >= 0 else "top",
                            fontweight="bold", fontsize=8)
        ax_bar.set_xticks(range(len(deltas)))
        ax_bar.set_xticklabels([f"{r.row + 1},{r.col + 1}" for r in ev.regions], rotation=90,
                               fontsize=6 if len(deltas) > 25 else 7)
        ax_bar.set_xlabel("region (row, col)")
        ax_bar.set_ylabel("P(gen) original - occluded")
        ax_bar.set_title(f"occlusion ({ev.occlusion}): red = pushes toward generated")

        ax_text.axis("off")
        body = ev.text if not ev.model_text else f"{ev.text}\nModel: {ev.model_text}"
        wrapped = "\n".join(textwrap.fill(p, 190) for p in body.split("\n"))
        ax_text.text(0.0, 1.0, wrapped, va="top", ha="left", fontsize=8, transform=ax_text.transAxes, wrap=True)
        verdict = "GENERATED" if ev.label == "fake" else "REAL"
        fig.suptitle(f"{verdict}: P(generated) {format_prob(ev.prob)}, threshold {format_prob(ev.threshold)} "
                     f"({ev.threshold_source}), "
                     f"model {ev.model}", fontsize=10)
        return fig_to_png(fig)


def heatmap_png(ev: Evidence, max_alpha: float = 0.8) -> bytes:
    """The relevance map alone, as an RGBA PNG at model-input size, to lay over `ev.image` elsewhere (the web page).

    Colours as in the figure (inferno); opacity grows with relevance, so irrelevant pixels stay see-through.
    """
    rel = np.clip(np.nan_to_num(np.asarray(ev.relevance, dtype=np.float64)), 0.0, 1.0)
    rgba = matplotlib.colormaps["inferno"](rel)
    rgba[..., 3] = max_alpha * rel
    buf = io.BytesIO()
    Image.fromarray((rgba * 255.0 + 0.5).astype(np.uint8), mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()


def save_figure(ev: Evidence, path: str | os.PathLike) -> Path:
    """Write the explanation figure as PNG to `path`."""
    return write_png(render_figure(ev), path)
