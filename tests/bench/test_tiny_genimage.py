"""The miniature GenImage builder (gendet.bench.tiny_genimage)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from generation.standins import SIZE, BlurRecon, SmoothNoise
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from gendet.bench.tiny_genimage import DatasetBuildError, build_tiny_genimage, read_manifest
from gendet.data.real_photos import list_photos, photo_split
from gendet.evaluation.fidelity import TinyCNNExtractor
from gendet.generation.registry import create_generator, save_generator

COUNTS = {"train": 24, "val": 16}


def _build(root: Path, tmp: Path, **kw: Any) -> dict:
    args = dict(size=SIZE, n_per_split=COUNTS, extractor=TinyCNNExtractor(dim=16), cache_dir=tmp / "cache",
                progress=False)
    args.update(kw)
    return build_tiny_genimage(root, args.pop("generators", [SmoothNoise(), BlurRecon()]), **args)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("tiny")
    root = tmp / "tiny_genimage"
    return root, _build(root, tmp)


def test_layout_counts_and_identical_containers(built):
    root, manifest = built
    assert not manifest["reused"] and manifest["complete"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["blur_recon", "smooth_noise"]
    sizes, modes, formats, dims = set(), set(), set(), set()
    for gen in ("blur_recon", "smooth_noise"):
        assert (root / gen / "samples.png").is_file()
        assert sorted(p.name for p in (root / gen).iterdir() if p.is_dir()) == ["train", "val"]
        for split, n in COUNTS.items():
            for cls in ("ai", "nature"):
                files = sorted((root / gen / split / cls).iterdir())
                assert [f.name for f in files] == [f"{i:05d}.png" for i in range(n)]
                for f in files:
                    with Image.open(f) as im:
                        modes.add(im.mode)
                        formats.add(im.format)
                        dims.add(im.size)
                        assert not {k for k in im.info if k not in ("dpi",)}  # no metadata chunks
                    sizes.add(f.stat().st_size)
            assert manifest["subsets"][gen]["counts"][split] == {"ai": n, "nature": n}
    assert modes == {"RGB"} and formats == {"PNG"} and dims == {(SIZE, SIZE)}
    assert len(sizes) == 1  # uncompressed PNG: byte size is the same for every image of both classes
    assert read_manifest(root)["key"] == manifest["key"]


def test_nature_comes_from_the_matching_photo_split(built):
    root, manifest = built
    split = photo_split(list_photos())
    sources = manifest["real"]["crop_sources"]
    for s in ("train", "val"):
        assert len(sources[s]) == COUNTS[s]
        assert set(sources[s]) <= {p.name for p in split[s]}
        assert manifest["real"]["splits"][s] == [p.name for p in split[s]]
    assert not set(sources["train"]) & set(sources["val"])
    # Every subset shares the same real crops; reconstructions are paired with them.
    for i in range(COUNTS["val"]):
        nat = _png(root / "smooth_noise" / "val" / "nature" / f"{i:05d}.png")
        assert np.array_equal(nat, _png(root / "blur_recon" / "val" / "nature" / f"{i:05d}.png"))
        rec = _png(root / "blur_recon" / "val" / "ai" / f"{i:05d}.png")
        assert np.abs(rec.astype(int) - nat.astype(int)).mean() < 20 and not np.array_equal(rec, nat)


def test_manifest_records_weights_seeds_and_fidelity(built):
    _, manifest = built
    sub = manifest["subsets"]["smooth_noise"]
    assert len(sub["weights_sha256"]) == 64 and sub["weights"] == "in-memory"
    assert sub["sample_seeds"]["train"] != sub["sample_seeds"]["val"]
    fid = sub["fidelity"]
    assert fid["features"].startswith("tiny_cnn") and fid["n_real"] == fid["n_fake"] == COUNTS["val"]
    assert fid["kid"] > 0 and fid["fid"] is None and fid["fid_note"]
    assert manifest["seed"] == 0 and manifest["size"] == SIZE and manifest["container"].startswith("PNG")


def test_cache_is_reused_then_rebuilt_when_the_seed_changes(built, tmp_path):
    root, first = built
    stamp = (root / "smooth_noise" / "val" / "ai" / "00000.png").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = _build(root, root.parent)
    reuse_s = time.perf_counter() - t0
    assert again["reused"] and again["key"] == first["key"]
    assert (root / "smooth_noise" / "val" / "ai" / "00000.png").stat().st_mtime_ns == stamp
    assert reuse_s < 5.0, f"cache hit took {reuse_s:.1f}s"

    other = tmp_path / "copy"
    a = _build(other, tmp_path, seed=0)
    b = _build(other, tmp_path, seed=1)
    assert not b["reused"] and b["key"] != a["key"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.")]  # temp / old folders cleaned up
    assert json.loads((other / "manifest.json").read_text())["seed"] == 1


def test_incomplete_data_set_is_rebuilt_and_foreign_folders_are_kept(tmp_path):
    root = tmp_path / "ds"
    first = _build(root, tmp_path, generators=[BlurRecon()], fidelity=False)
    assert first["subsets"]["blur_recon"]["fidelity"] is None
    (root / "blur_recon" / "val" / "ai" / "00003.png").unlink()
    assert not _build(root, tmp_path, generators=[BlurRecon()], fidelity=False)["reused"]
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(DatasetBuildError, match="refusing"):
        _build(foreign, tmp_path, generators=[BlurRecon()], fidelity=False)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_registered_generators_by_name_and_instance(tmp_path):
    dcgan = create_generator("dcgan", image_size=SIZE, z_dim=16, g_width=8, d_width=8)
    save_generator(dcgan, tmp_path / "weights" / "dcgan")
    recon = create_generator("ae_recon", image_size=SIZE, ae_channels=[8, 16], z_ch=4)
    m = _build(tmp_path / "ds", tmp_path, generators=["dcgan", recon], weights_dir=tmp_path / "weights",
               fidelity=False)
    assert m["subsets"]["dcgan"]["weights"].endswith("dcgan.safetensors")
    assert m["subsets"]["ae_recon"]["ai_source"].startswith("reconstruction")
    with pytest.raises(DatasetBuildError, match="no trained weights"):
        _build(tmp_path / "ds2", tmp_path, generators=["vae"], weights_dir=tmp_path / "weights", fidelity=False)
    with pytest.raises(DatasetBuildError, match="px"):
        _build(tmp_path / "ds3", tmp_path, generators=[recon], size=64, fidelity=False)


def _metadata_auc(rows: list[tuple[list[float], int, str]]) -> float:
    train = [(x, y) for x, y, s in rows if s == "train"]
    val = [(x, y) for x, y, s in rows if s == "val"]
    clf = DecisionTreeClassifier(max_depth=3, random_state=0).fit([x for x, _ in train], [y for _, y in train])
    return roc_auc_score([y for _, y in val], clf.predict_proba([x for x, _ in val])[:, 1])


def test_honesty_metadata_classifier_is_at_chance(built):
    """File size, width, height, mode and format cannot tell ai from nature in the built data set."""
    root, _ = built
    modes, formats = {"RGB": 0}, {"PNG": 0}
    rows, recompressed = [], []
    for f in sorted(root.glob("*/*/*/*.png")):
        split, cls = f.parent.parent.name, f.parent.name
        label = int(cls == "ai")
        with Image.open(f) as im:
            feats = [f.stat().st_size, im.width, im.height, modes.get(im.mode, -1), formats.get(im.format, -1)]
            buf = io.BytesIO()
            im.save(buf, format="PNG")  # what a default (compressed) PNG writer would have produced
        rows.append((feats, label, split))
        recompressed.append(([len(buf.getvalue()), *feats[1:]], label, split))
    assert _metadata_auc(rows) < 0.65
    # With compressed-PNG sizes the same classifier beats chance (this test can fail), which is why
    # the builder writes uncompressed PNGs.
    assert _metadata_auc(recompressed) > 0.65
