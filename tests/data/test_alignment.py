"""Honesty test: under default alignment, the file format cannot separate the classes.

Both classes are crops of the same real photos (same content distribution); they differ
only in how the files were stored, as in GenImage: "real" = JPEG of quality 70-95 at
varied sizes, "fake" = PNG at one fixed size. A logistic regression on format-sensitive
features of what the pipeline hands the model (`ImageTransform(pp).prepare(...)`) must
be at chance under the default Preprocess, and must clearly win without alignment, so
this test can fail.

Sample size: at 60 images the AUC of a chance classifier has a standard deviation near
0.08, too wide to tell a 0.7 leak from chance; 200 images (100 per class) at 64 px keep
that near 0.04 and the test at a few seconds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.fft import dctn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gendet.data import ImageTransform, Preprocess, decode_image

N_PER_CLASS = 100
SIZE = 64  # model input side
SCENE = 192  # scene extent (px of a photo downscaled to 4*SCENE short side) behind every file
FAKE_SIDE = 128  # GenImage-style fixed generator output size
SEED = 0
_HF = np.add.outer(np.arange(8), np.arange(8)) >= 6  # high-frequency positions of an 8x8 DCT


def _load_photo(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (SCENE * 4, SCENE * 4))  # fast DCT-domain downscale of the big JPEGs
        im = im.convert("RGB")
    s = SCENE * 4 / min(im.size)
    return im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def format_only_corpus(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray]:
    out = tmp_path_factory.mktemp("format_only")
    photos = [_load_photo(p) for p in sorted(real_dir.glob("*.jpg"))]
    rng = np.random.default_rng(SEED)
    files, labels = [], []
    for i in range(2 * N_PER_CLASS):
        photo = photos[i % len(photos)]  # 27 photos, alternating classes: both classes see every photo
        fake = i % 2 == 1
        w, h = (FAKE_SIDE, FAKE_SIDE) if fake else (int(v) for v in rng.integers(64, 161, 2))
        # same scene extent for both classes: the shorter side always covers SCENE photo pixels
        cw, ch = (SCENE, round(SCENE * h / w)) if w <= h else (round(SCENE * w / h), SCENE)
        x, y = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
        img = photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)
        if fake:
            path = out / f"fake_{i:03d}.png"
            img.save(path)
        else:
            path = out / f"real_{i:03d}.jpg"
            img.save(path, quality=int(rng.integers(70, 96)))
        files.append(path)
        labels.append(int(fake))
    return files, np.array(labels)


def _blockiness(g: np.ndarray) -> list[float]:
    """Excess of neighbour differences at the strongest of the 8 phases (JPEG block edges)."""
    out = []
    for axis in (0, 1):
        prof = np.abs(np.diff(g, axis=axis)).mean(axis=1 - axis)
        phases = np.array([prof[k::8].mean() for k in range(8)])
        out.append(float((phases.max() - np.median(phases)) / (phases.mean() + 1e-6)))
    return out


def _dct_grid(g: np.ndarray) -> float:
    """High-frequency DCT energy on the best-aligned 8x8 grid vs a typical grid: low for JPEG."""
    hf = np.abs(dctn(sliding_window_view(g - 128.0, (8, 8)), axes=(2, 3), norm="ortho")[:, :, _HF]).mean(axis=2)
    per_offset = np.array([[hf[oy::8, ox::8].mean() for ox in range(8)] for oy in range(8)])
    return float(np.log(per_offset.min() / np.median(per_offset) + 1e-9))


def _features(img: Image.Image) -> list[float]:
    g = np.asarray(img.convert("L"), dtype=np.float64)
    f = [_dct_grid(g), *_blockiness(g)]
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    radius = np.sqrt(np.add.outer(np.fft.fftfreq(g.shape[0]) ** 2, np.fft.fftfreq(g.shape[1]) ** 2)) / 0.5
    for lo, hi in ((0.25, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 2.0)):  # high-frequency energy bands
        f.append(float(np.log(power[(radius >= lo) & (radius < hi)].sum() / (power.sum() + 1e-12) + 1e-12)))
    pixels = img.width * img.height
    f.append(float(pixels))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    f.append(len(buf.getvalue()) / pixels)
    arr = np.asarray(img, dtype=np.float64)
    for q in (60, 75, 85, 90, 95, 98):  # re-encoded size and "JPEG ghost" error per quality
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        f.append(len(buf.getvalue()) / pixels)
        with Image.open(io.BytesIO(buf.getvalue())) as again:
            f.append(float(np.abs(np.asarray(again.convert("RGB"), dtype=np.float64) - arr).mean()))
    return f


def format_auc(files: list[Path], labels: np.ndarray, pp: Preprocess) -> float:
    """Held-out AUC of a logistic regression on format features of the model's input.

    2-fold (train on one half, score the other), pooled out-of-fold scores, averaged over
    5 different halvings.
    """
    tf = ImageTransform(pp)
    X = np.array([_features(tf.prepare(decode_image(p), np.random.default_rng(0))) for p in files])
    aucs = []
    for rep in range(5):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=rep)
        scores = cross_val_predict(clf, X, labels, cv=cv, method="predict_proba")[:, 1]
        aucs.append(roc_auc_score(labels, scores))
    return float(np.mean(aucs))


def test_default_alignment_hides_file_format(format_only_corpus) -> None:
    files, labels = format_only_corpus
    default = Preprocess()
    assert default.align == "jpeg" and default.resize  # the defaults this test is about
    pp = Preprocess(size=SIZE)  # defaults except the side length
    auc = format_auc(files, labels, pp)
    assert auc < 0.65, f"format leaks through default alignment ({pp}): held-out AUC {auc:.3f}"


def test_without_alignment_file_format_is_visible(format_only_corpus) -> None:
    files, labels = format_only_corpus
    auc = format_auc(files, labels, Preprocess(size=SIZE, align="none", resize=False))
    assert auc > 0.8, f"the format features are too weak to make the alignment test meaningful: AUC {auc:.3f}"
