"""Report figures: each function draws one matplotlib figure and returns PNG bytes.

Figures are built with `matplotlib.figure.Figure` on an explicit Agg canvas and
never registered with pyplot, so nothing here changes the global backend or
leaves open figures behind; style tweaks go through `rc_context`, which restores
the previous settings. The functions take plain dicts and arrays so the run
report and the benchmark report (several detectors) share them.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

from gendet.data.decode import DecodeError, decode_image

Matrix = Mapping[str, Mapping[str, "float | None"]]

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
DPI = 110


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fig_to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render to PNG bytes and drop the figure's artists (nothing is kept by pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    fig.clear()
    return buf.getvalue()


def write_png(data: bytes, path: str | os.PathLike) -> Path:
    """Write PNG bytes returned by any function here to `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _finite(value: Any) -> float:
    """A float for plotting; None/NaN/non-numbers become NaN (drawn as missing)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def short(label: object, limit: int = 24) -> str:
    """Tick and legend labels are cut with an ellipsis; tables show the full names."""
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clean_pairs(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=float).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    keep = np.isfinite(y) & np.isfinite(s)
    return y[keep].astype(int), s[keep]


def roc_curves(
    curves: Mapping[str, tuple[Any, Any]], title: str = "ROC curves", log_fpr: bool = False
) -> bytes:
    """One ROC curve per entry `name -> (labels, scores)`, AUC in the legend.

    Entries with a single class (ROC undefined) are listed in the legend as
    "n/a" instead of being drawn. Raises ValueError when `curves` is empty.
    """
    if not curves:
        raise ValueError("roc_curves: no curves given")
    with matplotlib.rc_context(_RC):
        fig = _new_figure(5.2, 4.4)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="chance")
        for name, (labels, scores) in curves.items():
            y, s = _clean_pairs(labels, scores)
            if len(np.unique(y)) < 2:
                ax.plot([], [], ls="none", label=f"{short(name, 32)} (n/a: one class)")
                continue
            fpr, tpr, _ = roc_curve(y, s)
            auc = roc_auc_score(y, s)
            ax.plot(fpr, tpr, lw=1.4, label=f"{short(name, 32)} (AUC {auc:.3f})")
        if log_fpr:
            ax.set_xscale("log")
            ax.set_xlim(1e-3, 1)
        else:
            ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate (real called generated)")
        ax.set_ylabel("true positive rate (generated caught)")
        ax.set_title(title)
        ax.legend(loc="lower right", frameon=False)
        ax.grid(alpha=0.3)
        return fig_to_png(fig)


def _matrix_arrays(matrix: Matrix, mean_column: bool) -> tuple[list[str], list[str], np.ndarray]:
    rows = list(matrix)
    cols: list[str] = []
    for r in rows:
        for c in matrix[r]:
            if c not in cols:
                cols.append(c)
    values = np.array([[_finite(matrix[r].get(c)) for c in cols] for r in rows], dtype=float).reshape(
        len(rows), len(cols)
    )
    if mean_column:
        with np.errstate(all="ignore"):
            means = np.array(
                [np.nanmean(v) if np.isfinite(v).any() else np.nan for v in values], dtype=float
            ).reshape(-1, 1)
        values = np.hstack([values, means])
        cols = [*cols, "mean"]
    return rows, cols, values


def _draw_heatmap(
    ax: Any, matrix: Matrix, fmt: str, vmin: float, vmax: float, cmap: str, mean_column: bool
) -> Any:
    rows, cols, values = _matrix_arrays(matrix, mean_column)
    cm = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cm, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=[short(c) for c in cols], rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), labels=[short(r) for r in rows])
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    small = len(cols) > 10
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = values[i, j]
            if math.isfinite(v):
                rgba = cm((v - vmin) / (vmax - vmin) if vmax > vmin else 0.5)
                lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                text, color = fmt.format(v), ("black" if lum > 0.55 else "white")
            else:
                text, color = "n/a", "0.3"
            weight = "bold" if mean_column and j == len(cols) - 1 else "normal"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7 if small else 8, fontweight=weight)
    if mean_column:
        # a white gap separates the row mean from the per-subset cells
        ax.axvline(len(cols) - 1.5, color="white", lw=4)
    return im


def heatmap(
    matrix: Matrix,
    title: str = "",
    row_label: str = "train subset",
    col_label: str = "test subset",
    fmt: str = "{:.3f}",
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "RdYlGn",
    mean_column: bool = True,
    colorbar_label: str = "",
) -> bytes:
    """Annotated heat map of `matrix[row][col]` (missing / None cells shown as n/a), plus a row-mean column."""
    return heatmaps({title: matrix} if title else {"": matrix}, row_label, col_label, fmt, vmin, vmax, cmap,
                    mean_column, colorbar_label)


def heatmaps(
    matrices: Mapping[str, Matrix],
    row_label: str = "train subset",
    col_label: str = "test subset",
    fmt: str = "{:.3f}",
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "RdYlGn",
    mean_column: bool = True,
    colorbar_label: str = "",
    ncols: int = 2,
) -> bytes:
    """Several heat maps on one shared colour scale, one panel per entry (e.g. one per detector)."""
    if not matrices or not any(len(m) for m in matrices.values()):
        raise ValueError("heatmaps: no matrix values given")
    n = len(matrices)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    n_r = max(len(m) for m in matrices.values())
    n_c = max(len({c for r in m.values() for c in r}) for m in matrices.values()) + int(mean_column)
    w = min(7.5, 1.6 + 0.72 * n_c) * ncols + 0.8
    h = (1.2 + 0.42 * n_r + 0.5) * nrows
    with matplotlib.rc_context(_RC):
        fig = _new_figure(w, h)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        im = None
        for ax, (name, matrix) in zip(axes, matrices.items(), strict=False):
            im = _draw_heatmap(ax, matrix, fmt, vmin, vmax, cmap, mean_column)
            ax.set_title(short(name, 48))
            ax.set_xlabel(col_label)
            ax.set_ylabel(row_label)
        for ax in axes[n:]:
            ax.set_visible(False)
        # with one or two rows a colour bar is a sliver; the cells carry their values anyway
        if im is not None and n_r >= 3:
            cb = fig.colorbar(im, ax=list(axes[:n]), shrink=0.9, pad=0.02)
            if colorbar_label:
                cb.set_label(colorbar_label)
        return fig_to_png(fig)


def grouped_bars(
    values: Mapping[str, Mapping[str, float | None]] | Mapping[str, float | None],
    title: str = "",
    ylabel: str = "",
    ylim: tuple[float, float] | None = (0.0, 1.0),
    reference: Mapping[str, float | None] | float | None = None,
    reference_label: str = "reference",
    chance: float | None = None,
) -> bytes:
    """Bars for `values[series][category]` (categories on x, one bar per series).

    A flat `{category: value}` is one series. `reference` draws a dashed line per
    series (or one line for a float), e.g. the clean accuracy above degradations.
    """
    if not values:
        raise ValueError("grouped_bars: no values given")
    if all(not isinstance(v, Mapping) for v in values.values()):
        series: dict[str, Mapping[str, Any]] = {"": values}  # type: ignore[dict-item]
    else:
        series = {k: v for k, v in values.items() if isinstance(v, Mapping)}
    cats: list[str] = []
    for s in series.values():
        for c in s:
            if c not in cats:
                cats.append(c)
    n_s, n_c = len(series), len(cats)
    width = 0.8 / n_s
    with matplotlib.rc_context(_RC):
        fig = _new_figure(min(11.0, 2.2 + n_c * (0.5 + 0.28 * n_s)), 3.6)
        ax = fig.add_subplot()
        colors = matplotlib.colormaps["tab10"]
        x = np.arange(n_c)
        for k, (name, s) in enumerate(series.items()):
            ys = np.array([_finite(s.get(c)) for c in cats])
            pos = x - 0.4 + width * (k + 0.5)
            bars = ax.bar(pos, np.nan_to_num(ys, nan=0.0), width * 0.92, label=short(name, 32) or None,
                          color=colors(k % 10))
            for b, v in zip(bars, ys, strict=True):
                label = "n/a" if math.isnan(v) else f"{v:.2f}"
                ax.annotate(label, (b.get_x() + b.get_width() / 2, 0 if math.isnan(v) else v),
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                            fontsize=6.5 if n_s * n_c > 16 else 7.5, rotation=90 if n_s * n_c > 24 else 0)
            ref = reference.get(name) if isinstance(reference, Mapping) else (reference if k == 0 else None)
            if ref is not None and math.isfinite(_finite(ref)):
                suffix = f" {short(name)}" if name and n_s > 1 else ""
                ax.axhline(_finite(ref), ls="--", lw=1, color=colors(k % 10) if n_s > 1 else "0.3",
                           label=f"{reference_label}{suffix} ({_finite(ref):.2f})")
        if chance is not None:
            ax.axhline(chance, ls=":", lw=0.8, color="0.5", label=f"chance ({chance:g})")
        tilt = n_c > 5
        ax.set_xticks(x, labels=[short(c) for c in cats], rotation=20 if tilt else 0, ha="right" if tilt else "center")
        if ylim is not None:
            ax.set_ylim(ylim[0], ylim[1] * 1.12)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig_to_png(fig)


def degradation_bars(
    values: Mapping[str, Mapping[str, float | None]] | Mapping[str, float | None],
    metric: str = "acc",
    clean: Mapping[str, float | None] | float | None = None,
    title: str | None = None,
    chance: float | None = None,
) -> bytes:
    """`metric` per degradation: flat `{degradation: value}` or `{detector: {degradation: value}}`.

    `clean` (per detector, or one float) is drawn as a dashed reference line;
    `chance` (default 0.5 for acc/auc) as a dotted one.
    """
    if chance is None and metric in ("acc", "auc"):
        chance = 0.5
    return grouped_bars(values, title=title or f"{metric} under degradations", ylabel=metric,
                        reference=clean, reference_label="clean", chance=chance)


def real_fake_bars(rows: Mapping[str, Mapping[str, float | None]], title: str = "Real vs fake accuracy") -> bytes:
    """`rows[name] = {"real_acc": .., "fake_acc": ..}` as paired bars; shows threshold imbalance."""
    series = {
        "real accuracy": {name: r.get("real_acc") for name, r in rows.items()},
        "fake accuracy": {name: r.get("fake_acc") for name, r in rows.items()},
    }
    return grouped_bars(series, title=title, ylabel="accuracy", chance=None)


def calibration_diagram(
    labels: Any, scores: Any, ece: float | None = None, n_bins: int = 15, title: str = "Reliability diagram"
) -> bytes:
    """Reliability diagram (uniform bins) over a score histogram; ECE in the title.

    When `ece` is not given it is computed with torchmetrics (same binning).
    """
    y, s = _clean_pairs(labels, scores)
    if y.size == 0:
        raise ValueError("calibration_diagram: no finite scores")
    s = np.clip(s, 0.0, 1.0)
    if ece is None:
        import torch  # lazy: only needed when the caller has no ECE from the metrics file
        from torchmetrics.functional.classification import binary_calibration_error

        ece = float(binary_calibration_error(torch.from_numpy(s), torch.from_numpy(y), n_bins=n_bins, norm="l1"))
    frac_pos, mean_pred = calibration_curve(y, s, n_bins=n_bins, strategy="uniform")
    with matplotlib.rc_context(_RC):
        fig = _new_figure(4.8, 5.0)
        ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="perfect calibration")
        ax.plot(mean_pred, frac_pos, marker="o", ms=4, lw=1.4, label="detector")
        ax.set_ylabel("fraction generated")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{title} ({n_bins} bins), ECE = {ece:.3f}")
        ax.legend(loc="upper left", frameon=False)
        ax.grid(alpha=0.3)
        bins = np.linspace(0, 1, n_bins + 1)
        hx.hist([s[y == 0], s[y == 1]], bins=bins, stacked=True, label=["real", "generated"],
                color=["tab:blue", "tab:orange"])
        hx.set_xlabel("score = P(generated)")
        hx.set_ylabel("count")
        hx.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        hx.legend(frameon=False, fontsize=7)
        hx.set_xlim(0, 1)
        return fig_to_png(fig)


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}_"))
        else:
            out[key] = v
    return out


def _series(rows: list[dict[str, Any]], key: str, xkey: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(_finite(r.get(xkey, i)), _finite(r.get(key))) for i, r in enumerate(rows) if key in r]
    pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def training_series(log_rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Which logged keys are losses, validation scores and learning rates (names vary by trainer)."""
    keys: list[str] = []
    for r in log_rows:
        for k in _flatten(r):
            if k not in keys:
                keys.append(k)
    low = {k: k.lower().replace("/", "_").replace(".", "_") for k in keys}
    losses = [k for k in keys if low[k].endswith("loss") and "config" not in low[k]]
    # the headline validation scores (val_auc, val/acc, val.auc ...), else anything validation-like
    val_scores = [k for k in keys if re.fullmatch(r"val_?(auc|acc)", low[k])]
    val_scores = val_scores or [k for k in keys if low[k].startswith("val") and low[k].split("_")[-1] in ("auc", "acc")]
    lrs = [k for k in keys if low[k] in ("lr", "learning_rate")]
    return {"loss": losses, "val": val_scores, "lr": lrs}


def training_curves(log_rows: Sequence[Mapping[str, Any]], title: str = "Training") -> bytes:
    """Loss curves and validation scores (AUC, accuracy) against the training step."""
    rows = [_flatten(r) for r in log_rows]
    if not rows:
        raise ValueError("training_curves: empty log")
    kinds = training_series(rows)
    if not kinds["loss"] and not kinds["val"]:
        raise ValueError("training_curves: no loss or validation metric in the log")
    xkey = "step" if any("step" in r for r in rows) else ("epoch" if any("epoch" in r for r in rows) else "row")
    panels = [p for p in ("loss", "val", "lr") if kinds[p]]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(3.6 * len(panels) + 0.6, 3.2)
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
        for ax, panel in zip(axes, panels, strict=True):
            for key in kinds[panel]:
                x, y = _series(rows, key, xkey)
                if x.size:
                    ax.plot(x, y, marker="o" if x.size < 30 else None, ms=3, lw=1.3, label=short(key, 28))
            ax.set_xlabel(xkey)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title({"loss": "loss", "val": "validation", "lr": "learning rate"}[panel])
            if panel == "val":
                ax.set_ylim(-0.02, 1.02)
            if panel == "lr":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useOffset=False)
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
        fig.suptitle(title)
        return fig_to_png(fig)


def make_thumbnail(source: Image.Image | str | os.PathLike | bytes, size: int = 112) -> Image.Image:
    """Decode (with gendet's decoder) and fit inside `size` x `size`; raises DecodeError on bad files."""
    img = source.convert("RGB") if isinstance(source, Image.Image) else decode_image(source)
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img


def image_to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def thumbnail_grid(
    items: Sequence[tuple[Image.Image | str | os.PathLike | bytes, str]],
    ncols: int = 6,
    thumb_px: int = 112,
    title: str = "",
) -> bytes:
    """Grid of images with a caption under each; unreadable images become a captioned empty cell."""
    if not items:
        raise ValueError("thumbnail_grid: no images given")
    ncols = max(1, min(ncols, len(items)))
    nrows = math.ceil(len(items) / ncols)
    cell = thumb_px / 72 * 1.05
    with matplotlib.rc_context(_RC):
        fig = _new_figure(ncols * cell, nrows * (cell + 0.45) + (0.3 if title else 0))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, (src, caption) in zip(axes, items, strict=False):
            try:
                ax.imshow(np.asarray(make_thumbnail(src, thumb_px)))
            except (DecodeError, OSError) as e:  # an unreadable image leaves its cell empty, with the reason
                caption = f"{caption}\n(unreadable: {getattr(e, 'reason', type(e).__name__)})"
            ax.set_title(caption, fontsize=7)
        if title:
            fig.suptitle(title)
        return fig_to_png(fig, dpi=72)
