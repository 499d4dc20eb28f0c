"""The manipulated subset: layout, exact masks, photo-grouped donors, seeded and cached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from data.manipulations.helpers import make_base_root
from PIL import Image

from gendet.bench.manipulated import (
    SUBSET,
    ManipulationConfig,
    build_manipulated_subset,
    manipulated_samples,
    read_base_crops,
)
from gendet.data.layouts import read_samples
from gendet.data.manipulations.codes import SOURCE_COPIED, SOURCE_GENERATED, SOURCE_REAL, decode_source_map

CFG = ManipulationConfig(kinds_train=("inpaint_latent_flow", "copy_move", "splice"),
                         kinds_val=("inpaint_pixel_flow", "copy_move", "splice"), perturb_fraction=0.5)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("manip")
    base = make_base_root(tmp / "base")
    manifest = build_manipulated_subset(base, tmp / "m", CFG, progress=False)
    return base, tmp / "m", manifest


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_layout_counts_and_kinds(built) -> None:
    _, root, manifest = built
    assert not manifest["reused"]
    for split, n in (("train", 6), ("val", 4)):
        for folder in ("ai", "nature", "masks"):
            assert len(list((root / SUBSET / split / folder).glob("*.png"))) == n
        kinds = Counter(r["kind"] for r in manifest["records"][split]["ai"])
        assert set(kinds) == set(CFG.kinds(split)) and max(kinds.values()) - min(kinds.values()) <= 1


def test_masks_are_exact_labels(built) -> None:
    base, root, manifest = built
    for split in ("train", "val"):
        crops, photos = read_base_crops(base, split)
        for rec in manifest["records"][split]["ai"]:
            i = rec["index"]
            with Image.open(root / SUBSET / split / "masks" / f"{i:05d}.png") as im:
                assert im.mode == "L" and set(np.unique(np.asarray(im))) <= {0, 128, 255}
                source = decode_source_map(im)
            want = SOURCE_GENERATED if rec["kind"].startswith("inpaint") else SOURCE_COPIED
            assert set(np.unique(source)) == {SOURCE_REAL, want}
            assert rec["area"] == pytest.approx((source != SOURCE_REAL).mean())
            if rec["kind"] == "splice":
                assert rec["donor_photo"] != rec["photo"] and rec["donor_photo"] in photos
            if "perturbation" not in rec and rec.get("edge") == "hard":
                ai = _load(root / SUBSET / split / "ai" / f"{i:05d}.png")
                real = crops[i].permute(1, 2, 0).numpy().astype(int)
                outside = source == SOURCE_REAL
                assert np.array_equal(ai[outside], real[outside])  # only the labelled pixels changed
                assert np.abs(ai[~outside] - real[~outside]).mean() > 1


def test_perturbations_hit_both_classes_and_nature_is_the_crop(built) -> None:
    base, root, manifest = built
    crops, _ = read_base_crops(base, "train")
    perturbed = {cls: sum("perturbation" in r for s in ("train", "val") for r in manifest["records"][s][cls])
                 for cls in ("ai", "nature")}
    assert perturbed["ai"] > 0 and perturbed["nature"] > 0
    for rec in manifest["records"]["train"]["nature"]:
        img = _load(root / SUBSET / "train" / "nature" / f"{rec['index']:05d}.png")
        same = np.array_equal(img, crops[rec["index"]].permute(1, 2, 0).numpy())
        assert same == ("perturbation" not in rec)


def test_samples_grouped_by_photo_with_kinds(built) -> None:
    base, root, _ = built
    samples = manipulated_samples(root)
    assert len(samples) == 20 and {s.generator for s in samples} == {SUBSET}
    assert all(s.group.endswith(".png") for s in samples)
    assert all((s.mask is not None) == (s.label == 1) for s in samples)
    assert {s.extra["kind"] for s in samples if s.label == 0} == {"real"}
    assert all(s.group.startswith(s.split) for s in samples)  # no photo crosses the split
    # the plain GenImage reader sees the same subset (masks for ai only)
    plain = read_samples(root, layout="genimage")
    assert sum(s.mask is not None for s in plain) == 10


def test_seeded_reproducible_and_cached(built, tmp_path) -> None:
    base, root, manifest = built
    again = build_manipulated_subset(base, root, CFG, progress=False)
    assert again["reused"] and again["key"] == manifest["key"]
    other = build_manipulated_subset(base, tmp_path / "copy", CFG, progress=False)
    assert other["key"] == manifest["key"]
    for p in sorted((root / SUBSET).rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "copy" / p.relative_to(root)).read_bytes()
    reseeded = build_manipulated_subset(base, tmp_path / "s1", ManipulationConfig(**{**CFG.__dict__, "seed": 1}),
                                        progress=False)
    assert reseeded["key"] != manifest["key"]
    assert any((tmp_path / "s1" / p.relative_to(root)).read_bytes() != p.read_bytes()
               for p in (root / SUBSET / "train" / "ai").glob("*.png"))


def test_refuses_to_replace_a_foreign_folder(built, tmp_path) -> None:
    base, _, _ = built
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_manipulated_subset(base, foreign, CFG, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
