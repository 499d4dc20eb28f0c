"""Manipulations keep exact pixel labels: codes, shapes, copy-move, splice, perturbations, inpainting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.data.manipulations.codes import (
    SOURCE_COPIED,
    SOURCE_GENERATED,
    SOURCE_REAL,
    decode_source_map,
    encode_source_map,
)
from gendet.data.manipulations.edits import PERTURBATIONS, copy_move, perturb, splice
from gendet.data.manipulations.shapes import SHAPES, random_mask


def _photo(seed: int, size: int = 64) -> np.ndarray:
    """A smooth image with texture, so a moved region differs from what it covers."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1) * 90 + 128
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_source_codes_round_trip_and_plain_masks() -> None:
    src = np.array([[SOURCE_REAL, SOURCE_GENERATED], [SOURCE_COPIED, SOURCE_REAL]], dtype=np.uint8)
    img = encode_source_map(src)
    assert img.mode == "L" and np.asarray(img).tolist() == [[0, 255], [128, 0]]
    assert np.array_equal(decode_source_map(img), src)
    # a plain black/white mask from elsewhere reads as real / generated, also after RGB conversion
    bw = Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("RGB")
    assert decode_source_map(bw).tolist() == [[SOURCE_REAL, SOURCE_GENERATED]]
    with pytest.raises(ValueError):
        encode_source_map(np.array([[3]]))


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_are_partial_and_seeded(shape: str) -> None:
    areas = []
    for seed in range(20):
        m = random_mask(shape, 64, 64, np.random.default_rng(seed), (0.1, 0.3))
        assert m.dtype == bool and m.shape == (64, 64) and m.any() and not m.all()
        areas.append(m.mean())
        assert np.array_equal(m, random_mask(shape, 64, 64, np.random.default_rng(seed), (0.1, 0.3)))
    lo, hi = (0.08, 0.32) if shape != "strokes" else (0.02, 0.6)  # strokes meet the area only roughly
    assert lo <= np.median(areas) <= hi
    assert len({round(a, 4) for a in areas}) > 10  # different seeds, different masks


def test_copy_move_hard_copies_the_source_region_exactly() -> None:
    img = _photo(0)
    mask = np.zeros((64, 64), dtype=bool)
    mask[5:20, 8:25] = True
    out, source, info = copy_move(img, mask, np.random.default_rng(3), blended=False)
    dy, dx = info["shift"]
    assert abs(dy) + abs(dx) >= 16
    dst = np.roll(mask, (dy, dx), axis=(0, 1))
    assert np.array_equal(out[dst], img[mask])  # the moved region is the source region, pixel for pixel
    assert np.array_equal(out[~dst], img[~dst])  # nothing else changed
    assert np.array_equal(source == SOURCE_COPIED, dst) and set(np.unique(source)) == {SOURCE_REAL, SOURCE_COPIED}
    assert not np.array_equal(out, img)


def test_copy_move_blended_labels_where_the_paste_dominates() -> None:
    img = _photo(1)
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:40, 10:30] = True
    out, source, info = copy_move(img, mask, np.random.default_rng(0), blended=True)
    dst = np.roll(mask, tuple(info["shift"]), axis=(0, 1))
    labelled = source == SOURCE_COPIED
    # the feathered label is the region give or take its soft border
    assert (labelled & dst).sum() / dst.sum() > 0.85 and (labelled & ~dst).sum() / dst.sum() < 0.15
    ys, xs = np.nonzero(dst)
    core = np.zeros_like(dst)
    core[ys.min() + 5:ys.max() - 4, xs.min() + 5:xs.max() - 4] = True
    src_core = np.roll(core, tuple(-v for v in info["shift"]), axis=(0, 1))
    assert np.abs(out[core].astype(int) - img[src_core].astype(int)).max() <= 1  # inside: the source
    far = np.ones_like(dst)
    far[max(0, ys.min() - 6):ys.max() + 7, max(0, xs.min() - 6):xs.max() + 7] = False
    assert np.array_equal(out[far], img[far])  # away from the feathered border: untouched


def test_splice_pastes_the_donor_region() -> None:
    img, donor = _photo(2), _photo(7)
    mask = np.zeros((64, 64), dtype=bool)
    mask[30:50, 30:45] = True
    out, source, info = splice(img, donor, mask, np.random.default_rng(5), blended=False)
    dst = np.roll(mask, tuple(info["shift"]), axis=(0, 1))
    assert np.array_equal(out[dst], donor[mask]) and np.array_equal(out[~dst], img[~dst])
    assert np.array_equal(source == SOURCE_COPIED, dst)
    with pytest.raises(ValueError):
        splice(img, donor[:32], mask, np.random.default_rng(0))


def test_copy_move_refuses_a_region_that_cannot_move() -> None:
    with pytest.raises(ValueError, match="cannot be moved"):
        copy_move(_photo(0), np.ones((64, 64), dtype=bool), np.random.default_rng(0))


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_perturbations_change_pixels_not_geometry(name: str) -> None:
    img = _photo(3)
    out, info = perturb(img, np.random.default_rng(1), name)
    assert out.shape == img.shape and out.dtype == np.uint8 and info["name"] == name
    assert np.abs(out.astype(int) - img.astype(int)).mean() > 0.2
    again, info2 = perturb(img, np.random.default_rng(1), name)
    assert np.array_equal(out, again) and info == info2
    # still the same picture: strongly correlated with the input
    assert np.corrcoef(out.reshape(-1).astype(float), img.reshape(-1).astype(float))[0, 1] > 0.9


@pytest.mark.parametrize("name", ["pixel_flow", "latent_flow"])
def test_inpaint_regenerates_only_the_masked_region(name: str) -> None:
    from gendet.bench.tiny_genimage import resolve_generator
    from gendet.generation.inpaint import inpaint

    gen, _, _ = resolve_generator(name, None)
    imgs = torch.from_numpy(np.stack([_photo(s) for s in range(3)])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([random_mask(s, 64, 64, np.random.default_rng(i), (0.15, 0.25))
                                       for i, s in enumerate(SHAPES)]))
    out = inpaint(gen, imgs, masks, seed=4, steps=3)
    keep = ~masks[:, None].expand_as(imgs)
    assert out.dtype == torch.uint8 and torch.equal(out[keep], imgs[keep])
    changed = (out.float() - imgs.float()).abs()[~keep].mean()
    assert changed > 5  # the hole holds new content
    assert torch.equal(out, inpaint(gen, imgs, masks, seed=4, steps=3, batch_size=1))  # seeded, batch-free
    assert not torch.equal(out, inpaint(gen, imgs, masks, seed=5, steps=3))
