"""Layout readers: GenImage, 0_real/1_fake, manifests, FakeClue JSON; splits and hold-outs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from gendet.data import Sample, detect_layout, list_subsets, read_samples, select_split, split_holdout


def _touch_images(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        p = folder / n
        Image.new("RGB", (8, 8), (len(n) * 10 % 255, 0, 0)).save(p)
        out.append(p)
    return out


def _genimage_gen(gen_dir: Path, n: int = 2) -> None:
    for split in ("train", "val"):
        _touch_images(gen_dir / split / "ai", [f"a{i}.png" for i in range(n)])
        _touch_images(gen_dir / split / "nature", [f"n{i}.JPEG" for i in range(n)])


# ------------------------------------------------------------------ GenImage


def test_genimage_fixture_tree(genimage_root: Path) -> None:
    assert detect_layout(genimage_root) == "genimage"
    samples = read_samples(genimage_root)
    assert list_subsets(samples) == ["gen_a", "gen_b"]
    # conftest: 12 train + 8 val per class per generator
    counts = Counter((s.generator, s.split, s.label) for s in samples)
    assert counts[("gen_a", "train", 1)] == 12 and counts[("gen_b", "val", 0)] == 8
    assert len(samples) == 2 * 2 * (12 + 8)
    for s in samples:
        assert s.label == (1 if s.path.parent.name == "ai" else 0)
        assert s.split == s.path.parent.parent.name
        assert s.group == "" and s.mask is None
    assert samples == read_samples(genimage_root)  # deterministic order
    only = read_samples(genimage_root, subset="gen_b", split="val")
    assert {(s.generator, s.split) for s in only} == {("gen_b", "val")} and len(only) == 16


def test_genimage_nested_imagenet_folders_and_aliases(tmp_path: Path) -> None:
    _genimage_gen(tmp_path / "Stable Diffusion V1.4" / "imagenet_ai_0419_sdv4")
    _genimage_gen(tmp_path / "Midjourney" / "imagenet_midjourney")
    _genimage_gen(tmp_path / "imagenet_glide")  # mixed depths in one root
    samples = read_samples(tmp_path)
    assert list_subsets(samples) == ["imagenet_ai_0419_sdv4", "imagenet_glide", "imagenet_midjourney"]
    by_alias = read_samples(tmp_path, subset="Stable Diffusion V1.4")
    assert {s.generator for s in by_alias} == {"imagenet_ai_0419_sdv4"}
    assert by_alias == read_samples(tmp_path, subset="imagenet_ai_0419_sdv4")
    with pytest.raises(ValueError, match="available"):
        read_samples(tmp_path, subset="dalle")


def test_genimage_root_is_one_generator(tmp_path: Path) -> None:
    gen = tmp_path / "imagenet_ai_0508_adm"
    _genimage_gen(gen, n=3)
    assert detect_layout(gen) == "genimage"
    samples = read_samples(gen)
    assert list_subsets(samples) == ["imagenet_ai_0508_adm"]
    assert len(samples) == 12
    assert len(read_samples(gen / "val")) == 6  # even a split folder works
    assert {s.split for s in read_samples(gen / "val")} == {"val"}


def test_genimage_duplicate_generator_names(tmp_path: Path) -> None:
    _genimage_gen(tmp_path / "v1" / "imagenet_glide")
    _genimage_gen(tmp_path / "v2" / "imagenet_glide")
    assert list_subsets(read_samples(tmp_path)) == ["v1/imagenet_glide", "v2/imagenet_glide"]


def test_genimage_masks_and_ignored_entries(tmp_path: Path) -> None:
    gen = tmp_path / "g"
    _genimage_gen(gen)
    _touch_images(gen / "train" / "masks", ["a0.png"])
    (gen / "train" / "ai" / "readme.txt").write_text("not an image")
    (gen / "train" / "ai" / "folder.jpg").mkdir()
    (gen / "train" / "ai" / ".hidden.png").write_bytes(b"")
    samples = read_samples(gen, split="train")
    assert len(samples) == 4
    masks = {s.path.name: s.mask for s in samples}
    assert masks["a0.png"] == gen / "train" / "masks" / "a0.png"
    assert masks["a1.png"] is None
    # masks are not images of either class
    assert all(s.path.parent.name != "masks" for s in samples)


def test_image_extensions_case_insensitive(tmp_path: Path) -> None:
    folder = tmp_path / "g" / "train" / "ai"
    names = ["a.JPG", "b.jpeg", "c.PNG", "d.webp", "e.bmp", "f.TIF", "g.tiff", "h.gif"]
    folder.mkdir(parents=True)
    for n in names:
        (folder / n).write_bytes(b"x")  # readers list files, the decoder judges them
    assert sorted(s.path.name for s in read_samples(tmp_path)) == sorted(names)


# ------------------------------------------------------------------ binary 0_real / 1_fake


def test_binary_with_splits_and_class_folders(tmp_path: Path) -> None:
    for split, gens in (("train", ["airplane", "cat"]), ("test", ["progan", "cyclegan/apple"])):
        for g in gens:
            _touch_images(tmp_path / split / g / "0_real", ["r0.png", "r1.png"])
            _touch_images(tmp_path / split / g / "1_fake", ["f0.png"])
    assert detect_layout(tmp_path) == "binary"
    samples = read_samples(tmp_path)
    assert len(samples) == 12
    assert {s.split for s in samples} == {"train", "test"}
    assert list_subsets(samples) == ["airplane", "cat", "cyclegan", "progan"]
    for s in samples:
        assert s.label == (0 if s.path.parent.name == "0_real" else 1)
    apple = [s for s in samples if s.generator == "cyclegan"]
    assert {s.extra["category"] for s in apple} == {"cyclegan/apple"}
    assert {s.generator for s in select_split(samples, "eval")} == {"progan", "cyclegan"}


def test_binary_without_splits(tmp_path: Path) -> None:
    _touch_images(tmp_path / "0_real", ["a.jpg", "b.jpg"])
    _touch_images(tmp_path / "1_fake", ["c.png"])
    samples = read_samples(tmp_path)
    assert [(s.path.name, s.label, s.generator, s.split) for s in samples] == [
        ("a.jpg", 0, "", "train"),
        ("b.jpg", 0, "", "train"),
        ("c.png", 1, "", "train"),
    ]
    assert select_split(samples, "eval") == samples  # no test/val: everything


# ------------------------------------------------------------------ manifests


def _manifest_images(tmp_path: Path) -> None:
    _touch_images(tmp_path / "img", ["a.png", "b.png", "c.png", "d.png"])


def test_manifest_csv(tmp_path: Path) -> None:
    _manifest_images(tmp_path)
    (tmp_path / "manifest.csv").write_text(
        "path,label,split,generator,group,mask,explanation,source\n"
        "img/a.png,real,train,,photo1,,,cam\n"
        "img/b.png,FAKE,train,sd,photo1,img/c.png,blurry hands,web\n"
        "img/c.png,0,val,,,,,\n"
        f"{tmp_path / 'img' / 'd.png'},generated,test,sd,,,,\n"
        "img/missing.png,1,test,sd,,,,\n"
    )
    assert detect_layout(tmp_path) == "manifest"
    samples = read_samples(tmp_path)
    assert [s.label for s in samples] == [0, 1, 0, 1, 1]
    assert [s.split for s in samples] == ["train", "train", "val", "test", "test"]
    b = samples[1]
    assert b.path == tmp_path / "img" / "b.png" and b.generator == "sd" and b.group == "photo1"
    assert b.mask == tmp_path / "img" / "c.png" and b.explanation == "blurry hands"
    assert b.extra == {"source": "web"}
    assert samples[3].path == tmp_path / "img" / "d.png"  # absolute path kept
    assert not samples[4].path.exists()  # listed but missing: still returned
    assert read_samples(tmp_path / "manifest.csv") == samples
    assert select_split(samples, "eval") == samples[3:]


def test_manifest_jsonl_minimal_columns(tmp_path: Path) -> None:
    _manifest_images(tmp_path)
    sub = tmp_path / "lists"
    sub.mkdir()
    rows = [{"path": "../img/a.png", "label": 1}, {"path": "../img/b.png", "label": "nature"}]
    (sub / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert detect_layout(sub / "data.jsonl") == "manifest"
    samples = read_samples(sub / "data.jsonl")
    assert [(s.path.resolve(), s.label, s.split) for s in samples] == [
        ((tmp_path / "img" / "a.png").resolve(), 1, "train"),
        ((tmp_path / "img" / "b.png").resolve(), 0, "train"),
    ]


@pytest.mark.parametrize("bad", ["2", "maybe", "", "-1"])
def test_manifest_bad_label_names_the_row(tmp_path: Path, bad: str) -> None:
    (tmp_path / "manifest.csv").write_text(f"path,label\na.png,1\nb.png,{bad}\n")
    with pytest.raises(ValueError, match=r"line 3.*invalid label"):
        read_samples(tmp_path)


def test_manifest_bad_rows(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "a.png", "label": true}\n')
    with pytest.raises(ValueError, match="line 1.*invalid label"):
        read_samples(m)
    m.write_text('{"path": "a.png", "label": 1}\n{"path": "b.png"}\n')
    with pytest.raises(ValueError, match="line 2.*missing 'label'"):
        read_samples(m)
    m.write_text('{"path": "a.png", "label": 1, "split": "holdout"}\n')
    with pytest.raises(ValueError, match="invalid split"):
        read_samples(m)
    m.write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1.*invalid JSON"):
        read_samples(m)


def test_folder_with_two_manifests_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label\na.png,1\n")
    (tmp_path / "manifest.jsonl").write_text('{"path": "a.png", "label": 1}\n')
    with pytest.raises(ValueError, match="both"):
        detect_layout(tmp_path)


# ------------------------------------------------------------------ FakeClue


def _conv(text: str) -> list[dict]:
    return [{"from": "human", "value": "<image>\nIs this image real or fake?"}, {"from": "gpt", "value": text}]


def test_fakeclue_label_convention_is_converted(tmp_path: Path) -> None:
    _touch_images(tmp_path / "animal" / "fake", ["x.png"])
    _touch_images(tmp_path / "animal" / "real", ["y.png"])
    records = [
        {"image": "animal/fake/x.png", "label": 0, "cate": "animal", "conversations": _conv("This is a fake image.")},
        {"image": "animal/real/y.png", "label": 1, "cate": "animal", "conversations": _conv("This is a real image.")},
        {"image": "doc/z.png", "cate": "doc", "conversations": _conv("This is a fake image. Warped text.")},
        {"image": "doc/w.png", "cate": "doc", "conversations": _conv("this is a real photo of a page")},
        {"image": "doc/v.png", "label": "fake", "cate": "doc"},
    ]
    (tmp_path / "test.json").write_text(json.dumps(records))
    assert detect_layout(tmp_path) == "fakeclue"
    samples = read_samples(tmp_path)
    # FakeClue 0 = fake -> ours 1; FakeClue 1 = real -> ours 0
    assert [s.label for s in samples] == [1, 0, 1, 0, 1]
    assert samples[0].explanation == "This is a fake image."
    assert samples[0].path == tmp_path / "animal" / "fake" / "x.png"
    assert {s.split for s in samples} == {"test"}  # from the file name
    assert list_subsets(samples) == ["animal", "doc"]
    assert read_samples(tmp_path / "test.json") == samples


def test_fakeclue_unknown_label_is_error(tmp_path: Path) -> None:
    f = tmp_path / "data.json"
    f.write_text(json.dumps([{"image": "a.png", "conversations": _conv("Hard to say.")}]))
    assert detect_layout(f) == "fakeclue"
    with pytest.raises(ValueError, match="record 0.*This is a fake/real"):
        read_samples(f)
    f.write_text(json.dumps([{"image": "a.png", "label": 2}]))
    with pytest.raises(ValueError, match="record 0.*invalid FakeClue label"):
        read_samples(f)
    f.write_text(json.dumps({"image": "a.png"}))
    with pytest.raises(ValueError, match="list"):
        read_samples(f)


# ------------------------------------------------------------------ detection and arguments


def test_undetectable_root_names_what_was_looked_for(tmp_path: Path) -> None:
    _touch_images(tmp_path / "photos", ["a.png"])
    with pytest.raises(ValueError) as exc:
        detect_layout(tmp_path)
    msg = str(exc.value)
    for wanted in ("manifest", "{ai,nature}", "0_real", "FakeClue"):
        assert wanted in msg
    with pytest.raises(FileNotFoundError):
        read_samples(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown layout"):
        read_samples(tmp_path, layout="imagefolder")


def test_forced_layout_and_split_filter(genimage_root: Path) -> None:
    assert read_samples(genimage_root, layout="genimage") == read_samples(genimage_root)
    with pytest.raises(ValueError, match="no manifest"):
        read_samples(genimage_root, layout="manifest")
    with pytest.raises(ValueError, match=r"split 'test'.*available"):
        read_samples(genimage_root, split="test")
    assert select_split(read_samples(genimage_root), "eval") == read_samples(genimage_root, split="val")
    assert select_split(read_samples(genimage_root), "train") == read_samples(genimage_root, split="train")
    with pytest.raises(ValueError, match="purpose"):
        select_split([], "test")


# ------------------------------------------------------------------ hold-out


def _grouped(n_groups: int, per_group: int, fake_every: int = 2) -> list[Sample]:
    return [
        Sample(path=Path(f"/d/g{g}_{i}.png"), label=int(g % fake_every == 0), group=f"photo{g}")
        for g in range(n_groups)
        for i in range(per_group)
    ]


def test_split_holdout_grouped_stratified_deterministic() -> None:
    samples = _grouped(20, 3)
    train, hold = split_holdout(samples, 0.2, seed=0)
    assert len(train) + len(hold) == len(samples)
    assert {s.group for s in train}.isdisjoint({s.group for s in hold})
    assert {s.label for s in hold} == {0, 1}
    assert 0.1 <= len(hold) / len(samples) <= 0.3
    assert split_holdout(samples, 0.2, seed=0) == (train, hold)
    assert [s for s in samples if s in hold] == hold  # input order kept
    other = [split_holdout(samples, 0.2, seed=s)[1] for s in range(1, 6)]
    assert any(h != hold for h in other)


def test_split_holdout_falls_back_to_path_groups_and_keeps_both_classes() -> None:
    # imbalanced: 3 fakes among 30 ungrouped files
    samples = [Sample(path=Path(f"/d/{i}.png"), label=int(i < 3)) for i in range(30)]
    for seed in range(5):
        train, hold = split_holdout(samples, 0.1, seed=seed)
        assert {s.label for s in hold} == {0, 1}
        assert {s.label for s in train} == {0, 1}
        assert not {s.path for s in train} & {s.path for s in hold}


def test_split_holdout_edges() -> None:
    samples = _grouped(4, 2)
    assert split_holdout(samples, 0.0, seed=0) == (samples, [])
    with pytest.raises(ValueError, match="fraction"):
        split_holdout(samples, 1.0, seed=0)
    one_group = [Sample(path=Path(f"/d/{i}.png"), label=i % 2, group="same") for i in range(6)]
    with pytest.raises(ValueError, match="single group"):
        split_holdout(one_group, 0.2, seed=0)
    train, hold = split_holdout(_grouped(3, 2), 0.2, seed=0)  # fewer groups than folds
    assert hold and train


def test_holdout_does_not_depend_on_how_the_data_root_is_written(tmp_path, monkeypatch):
    """Files without a group are keyed by their absolute path: a relative root once sorted
    differently against photo groups and changed the holdout (same data, other results)."""
    from gendet.data.layouts import split_holdout
    from gendet.data.sample import Sample

    def samples(root: Path) -> list[Sample]:
        real = [Sample(root / "nature" / f"{i:03d}.png", 0, group=f"photo_{i % 7}") for i in range(40)]
        fake = [Sample(root / "ai" / f"{i:03d}.png", 1) for i in range(40)]
        return real + fake

    (tmp_path / "zdata").mkdir()  # "zdata/..." sorts after "photo_*", "/tmp/..." before
    monkeypatch.chdir(tmp_path)
    held_abs = split_holdout(samples(tmp_path / "zdata"), 0.1, 0)[1]
    held_rel = split_holdout(samples(Path("zdata")), 0.1, 0)[1]
    assert [s.path.name for s in held_abs] == [s.path.name for s in held_rel]
    assert [s.label for s in held_abs] == [s.label for s in held_rel]
