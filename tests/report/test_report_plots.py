"""Every figure function returns a PNG that Pillow can open, and leaves no global matplotlib state behind."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from gendet.report import plots


def _open(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.width > 100 and im.height > 100
    return im


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    return y, np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, y.size), 0, 1)


def test_roc_curves(scores):
    y, s = scores
    a = plots.roc_curves({"all": (y, s), "one class": (np.ones(5), np.linspace(0, 1, 5))})
    b = plots.roc_curves({"all": (y, 1 - s)})
    _open(a), _open(b)
    assert a != b  # the drawing depends on the data
    with pytest.raises(ValueError):
        plots.roc_curves({})
    with pytest.raises(ValueError, match="length"):
        plots.roc_curves({"x": ([0, 1], [0.2])})


def test_heatmap_and_multi_panel():
    m = {"gen_a": {"gen_a": 0.99, "gen_b": 0.61, "gen_c": None}, "gen_b": {"gen_a": 0.5, "gen_b": float("nan")}}
    _open(plots.heatmap(m, title="acc"))
    im = _open(plots.heatmaps({"resnet50": m, "spec": m, "npr": {"gen_a": {"gen_a": 0.7}}}, ncols=2))
    assert im.height > im.width / 2  # two rows of panels
    with pytest.raises(ValueError):
        plots.heatmaps({})


def test_bar_charts():
    flat = {"resize_64": 0.7, "jpeg_30": None, "blur_5": 0.55}
    grouped = {"resnet50": flat, "spec": {"resize_64": 0.5, "blur_5": 0.6}}
    _open(plots.degradation_bars(flat, clean=0.9))
    _open(plots.degradation_bars(grouped, clean={"resnet50": 0.9, "spec": 0.8}))
    _open(plots.real_fake_bars({"all": {"real_acc": 0.9, "fake_acc": 0.4}, "gen_a": {"real_acc": 1.0}}))
    with pytest.raises(ValueError):
        plots.grouped_bars({})


def test_calibration_diagram(scores):
    y, s = scores
    _open(plots.calibration_diagram(y, s, ece=0.05))
    _open(plots.calibration_diagram(y, s))  # ECE computed with torchmetrics
    with pytest.raises(ValueError):
        plots.calibration_diagram([0, 1], [float("nan"), float("nan")])


def test_training_curves_tolerates_log_shapes():
    rows = [{"step": i, "loss": 1 / i, "lr": 1e-3} for i in range(1, 6)]
    rows += [{"step": 5, "epoch": 0, "val": {"auc": 0.8, "loss": 0.4}}]  # nested validation block
    assert plots.training_series(rows)["val"] == ["val_auc"]
    _open(plots.training_curves(rows))
    with pytest.raises(ValueError):
        plots.training_curves([{"step": 1, "note": "x"}])
    with pytest.raises(ValueError):
        plots.training_curves([])


def test_thumbnail_grid_skips_unreadable(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    thumb = plots.make_thumbnail(good, 112)
    assert max(thumb.size) == 112
    _open(plots.thumbnail_grid([(good, "fake, 0.99"), (bad, "broken"), (Image.new("RGB", (64, 64)), "pil")]))


def test_no_global_state_leaks(scores):
    import matplotlib.pyplot as plt

    backend, figs, rc = matplotlib.get_backend(), plt.get_fignums(), dict(matplotlib.rcParams)
    y, s = scores
    plots.roc_curves({"all": (y, s)})
    plots.heatmap({"a": {"a": 1.0}})
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == figs
    assert dict(matplotlib.rcParams) == rc
