"""Read labelled image collections from the common on-disk layouts into `Sample` lists.

Layouts (``detect_layout`` picks one by inspecting ROOT; ``layout=`` forces it):

- ``genimage``: ``ROOT/<generator>/{train,val}/{ai,nature}``. Generator folder names
  are free-form and may nest (``ROOT/Stable Diffusion V1.4/imagenet_ai_0419_sdv4/train/ai``);
  ROOT may also be one generator folder (train/val directly inside). ``ai`` -> 1,
  ``nature`` -> 0. The generator is the name of the folder holding train/val (its
  path relative to ROOT when two share a name). GenImage's ``val`` is the protocol's
  test set. An optional ``<split>/masks/<stem>.png`` becomes the ``Sample.mask`` of
  ``ai/<stem>.*`` (real images have no manipulated pixels).
- ``binary`` (ForenSynths / CNNDetection): ``ROOT/[split/][class/...]{0_real,1_fake}``.
  ``train``/``val``/``test`` folders give the split; the first folder below it is the
  generator (CNNDetection's ``test/cyclegan/apple`` -> generator ``cyclegan``; the full
  class path is kept in ``extra["category"]``).
- ``manifest``: a CSV or JSONL file with ``path,label[,split][,generator][,group][,mask][,explanation]``;
  paths are relative to the manifest file. ROOT is the file or a folder holding exactly one
  ``manifest.csv`` / ``manifest.jsonl``. Labels: 0/1 or real/nature/fake/ai/generated.
  Files listed but missing are still returned, so the dataset reports them per file.
- ``fakeclue``: FakeClue / FakeVLM JSON, a list of records
  ``{"image", "label", "cate", "conversations": [{"from": "human"}, {"from": "gpt", "value": <explanation>}]}``.
  **FakeClue's label convention is the opposite of ours: there 1 = real, 0 = fake.** We map
  FakeClue 1 -> gendet 0 (real) and FakeClue 0 -> gendet 1 (generated). Word labels
  ("real", "fake", ...) map as in manifests. Without a label the explanation decides
  ("This is a fake ..." -> 1, "This is a real ..." -> 0); anything else is an error.
  ``cate`` becomes the generator (subset); image paths are relative to the JSON file; the
  split is the file's stem when it is train/val/test (FakeClue ships train.json / test.json).
  ROOT is a JSON file or a folder holding train.json / val.json / test.json.

Data without split information is marked ``split="train"``; ``select_split(..., "eval")``
then falls back to all samples. Sample order is deterministic (sorted paths / file order).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from gendet.data.sample import Sample

LAYOUTS = ("genimage", "binary", "manifest", "fakeclue")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SPLITS = ("train", "val", "test")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
FAKECLUE_NAMES = tuple(f"{s}.json" for s in SPLITS)
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "nature": 0, "fake": 1, "ai": 1, "generated": 1}
_MAX_DEPTH = 4  # how deep below ROOT the folder readers look for train/val or 0_real/1_fake


# ---------------------------------------------------------------- helpers


def _image_files(folder: Path) -> list[Path]:
    """Image-extension entries directly in `folder`, sorted. Broken links and unreadable
    files are kept (the dataset reports them per file); folders named like images are not."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    out = []
    for e in entries:
        if Path(e.name).suffix.lower() not in IMAGE_EXTENSIONS or e.name.startswith("."):
            continue
        try:
            if e.is_dir():
                continue
        except OSError:
            pass
        out.append(Path(e.path))
    return sorted(out)


def _walk_dirs(root: Path, is_leaf_parent) -> list[Path]:
    """Folders below `root` (root included, depth <= _MAX_DEPTH) for which `is_leaf_parent(dir)`
    holds; the walk does not descend into them (their children are image folders)."""
    found = []
    for cur, dirs, _ in os.walk(root, followlinks=True):
        cur_p = Path(cur)
        depth = len(cur_p.relative_to(root).parts)
        if is_leaf_parent(cur_p):
            found.append(cur_p)
            dirs[:] = []
            continue
        if depth >= _MAX_DEPTH:
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _is_genimage_split(d: Path) -> bool:
    return d.name.lower() in SPLITS and ((d / "ai").is_dir() or (d / "nature").is_dir())


def _is_binary_parent(d: Path) -> bool:
    return (d / "0_real").is_dir() or (d / "1_fake").is_dir()


def _parse_label(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: invalid label {value!r} (expected 0/1 or real/nature/fake/ai/generated)")
    key = str(int(value)) if isinstance(value, int | float) and float(value) in (0.0, 1.0) else str(value)
    label = _LABEL_WORDS.get(key.strip().lower())
    if label is None:
        raise ValueError(f"{where}: invalid label {value!r} (expected 0/1 or real/nature/fake/ai/generated)")
    return label


def _parse_split(value: Any, where: str) -> str:
    split = _SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise ValueError(f"{where}: invalid split {value!r} (expected one of {SPLITS})")
    return split


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


# ---------------------------------------------------------------- layout detection


def _manifest_file(root: Path) -> Path | None:
    if root.is_file():
        return root if root.suffix.lower() in (".csv", ".jsonl") else None
    hits = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
    if len(hits) > 1:
        raise ValueError(f"{root}: both {MANIFEST_NAMES[0]} and {MANIFEST_NAMES[1]} found; pass one file explicitly")
    return hits[0] if hits else None


def _fakeclue_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix.lower() == ".json" else []
    return [root / n for n in FAKECLUE_NAMES if (root / n).is_file()]


def detect_layout(root: str | os.PathLike) -> str:
    """Name of the layout of `root` (a folder, or a manifest / FakeClue JSON file)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data root not found: {root}")
    if _manifest_file(root) is not None:
        return "manifest"
    if root.is_dir():
        if _walk_dirs(root, _is_genimage_split):
            return "genimage"
        if _walk_dirs(root, _is_binary_parent):
            return "binary"
    if _fakeclue_files(root):
        return "fakeclue"
    raise ValueError(
        f"cannot tell the data layout of {root}: looked for a manifest file (.csv/.jsonl, or "
        f"{' / '.join(MANIFEST_NAMES)} in the folder), GenImage folders <generator>/{{train,val}}/{{ai,nature}}, "
        f"binary folders [split/][class/]{{0_real,1_fake}} (up to {_MAX_DEPTH} levels deep), and FakeClue JSON "
        f"(a .json file, or {' / '.join(FAKECLUE_NAMES)} in the folder)"
    )


# ---------------------------------------------------------------- readers (one per layout)


def _read_genimage(root: Path) -> list[Sample]:
    split_dirs = _walk_dirs(root, _is_genimage_split)
    gen_dirs = sorted({d.parent for d in split_dirs})
    names = [g.name for g in gen_dirs]
    samples = []
    for split_dir in split_dirs:
        gen_dir = split_dir.parent
        # ROOT may itself be a generator folder (rel == ".") or even a split folder.
        rel = gen_dir.relative_to(root) if gen_dir.is_relative_to(root) else Path()
        base_name = gen_dir.name or gen_dir.resolve().name
        name = base_name if names.count(gen_dir.name) == 1 or not rel.parts else rel.as_posix()
        masks = {p.stem: p for p in _image_files(split_dir / "masks") if p.suffix.lower() == ".png"}
        for cls, label in (("nature", 0), ("ai", 1)):
            for path in _image_files(split_dir / cls):
                samples.append(
                    Sample(
                        path=path,
                        label=label,
                        split=split_dir.name.lower(),
                        generator=name,
                        mask=masks.get(path.stem) if label == 1 else None,  # ai/x and nature/x may share a stem
                        extra={"aliases": [*rel.parts, base_name]},
                    )
                )
    return samples


def _read_binary(root: Path) -> list[Sample]:
    samples = []
    for parent in _walk_dirs(root, _is_binary_parent):
        parts = list(parent.relative_to(root).parts)
        if parts and parts[0].lower() in SPLITS:
            split = parts.pop(0).lower()
        else:
            split = root.name.lower() if root.name.lower() in SPLITS else "train"
        generator = parts[0] if parts else ""
        for cls, label in (("0_real", 0), ("1_fake", 1)):
            for path in _image_files(parent / cls):
                extra = {"category": "/".join(parts)} if parts else {}
                samples.append(Sample(path=path, label=label, split=split, generator=generator, extra=extra))
    return samples


def _manifest_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n}: invalid JSON ({e})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
                yield f"{path} line {n}", row
    else:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames or []]
            for n, row in enumerate(reader, start=2):  # line 1 is the header
                yield f"{path} line {n}", row


def _read_manifest(root: Path) -> list[Sample]:
    path = _manifest_file(root)
    if path is None:
        raise ValueError(f"no manifest at {root} (expected a .csv/.jsonl file or one of {MANIFEST_NAMES})")
    base = path.parent
    known = {"path", "label", "split", "generator", "group", "mask", "explanation"}
    samples = []
    for where, row in _manifest_rows(path):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        if not row.get("path"):
            raise ValueError(f"{where}: missing 'path'")
        if "label" not in row:
            raise ValueError(f"{where}: missing 'label'")
        opt = {k: row.get(k) for k in ("split", "generator", "group", "mask", "explanation")}
        samples.append(
            Sample(
                path=_resolve(base, str(row["path"])),
                label=_parse_label(row["label"], where),
                split=_parse_split(opt["split"], where) if opt["split"] not in (None, "") else "train",
                generator=str(opt["generator"] or ""),
                group=str(opt["group"] or ""),
                mask=_resolve(base, str(opt["mask"])) if opt["mask"] else None,
                explanation=str(opt["explanation"]) if opt["explanation"] not in (None, "") else None,
                extra={k: v for k, v in row.items() if k not in known},
            )
        )
    return samples


def _fakeclue_explanation(rec: dict[str, Any]) -> str | None:
    if rec.get("explanation"):
        return str(rec["explanation"])
    for turn in rec.get("conversations") or []:
        if isinstance(turn, dict) and str(turn.get("from", turn.get("role", ""))).lower() in ("gpt", "assistant"):
            return str(turn.get("value", turn.get("content", ""))).strip()
    return None


def _fakeclue_label(rec: dict[str, Any], explanation: str | None, where: str) -> int:
    raw = rec.get("label")
    if raw is not None and not isinstance(raw, str):
        if raw not in (0, 1) or isinstance(raw, bool):
            raise ValueError(f"{where}: invalid FakeClue label {raw!r} (expected 0 = fake or 1 = real)")
        return 1 - int(raw)  # FakeClue: 1 = real, 0 = fake; gendet: 1 = generated
    if isinstance(raw, str) and raw.strip():
        if raw.strip() in ("0", "1"):
            return 1 - int(raw.strip())
        return _parse_label(raw, where)
    text = (explanation or "").strip().lower()
    if text.startswith("this is a fake"):
        return 1
    if text.startswith("this is a real"):
        return 0
    raise ValueError(f"{where}: no label, and the explanation does not start with 'This is a fake/real'")


def _read_fakeclue(root: Path) -> list[Sample]:
    files = _fakeclue_files(root)
    if not files:
        raise ValueError(f"no FakeClue JSON at {root} (expected a .json file or one of {FAKECLUE_NAMES})")
    samples = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
        file_split = _SPLIT_ALIASES.get(path.stem.lower())
        for i, rec in enumerate(data):
            where = f"{path} record {i}"
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected an object, got {type(rec).__name__}")
            image = rec.get("image") or rec.get("image_path") or rec.get("path")
            if not image:
                raise ValueError(f"{where}: no image path ('image')")
            explanation = _fakeclue_explanation(rec)
            split = file_split or (_parse_split(rec["split"], where) if rec.get("split") else "train")
            samples.append(
                Sample(
                    path=_resolve(path.parent, str(image)),
                    label=_fakeclue_label(rec, explanation, where),
                    split=split,
                    generator=str(rec.get("cate") or ""),
                    explanation=explanation or None,
                    extra={"fakeclue_label": rec.get("label")},
                )
            )
    return samples


_READERS = {"genimage": _read_genimage, "binary": _read_binary, "manifest": _read_manifest, "fakeclue": _read_fakeclue}


# ---------------------------------------------------------------- public API


def read_samples(
    root: str | os.PathLike,
    layout: str = "auto",
    subset: str | None = None,
    split: str | None = None,
) -> list[Sample]:
    """All samples under `root`, optionally only one subset (generator) and/or split.

    `subset` matches the generator name or, for GenImage, any folder name on the way to
    it (so "Stable Diffusion V1.4" selects ".../imagenet_ai_0419_sdv4"). An empty result
    for a requested subset or split is an error that lists what exists.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data root not found: {root}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in _READERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS} or 'auto'")
    samples = _READERS[layout](root)
    if not samples:
        raise ValueError(f"no images found in {root} (layout {layout})")
    if subset is not None:
        chosen = [s for s in samples if subset == s.generator or subset in s.extra.get("aliases", ())]
        if not chosen:
            raise ValueError(f"subset {subset!r} not found in {root}; available: {list_subsets(samples)}")
        samples = chosen
    if split is not None:
        want = _parse_split(split, "split argument")
        chosen = [s for s in samples if s.split == want]
        if not chosen:
            have = sorted({s.split for s in samples})
            raise ValueError(f"no samples with split {want!r} in {root}; available: {have}")
        samples = chosen
    return samples


def list_subsets(samples: Iterable[Sample]) -> list[str]:
    """Sorted distinct non-empty generator names."""
    return sorted({s.generator for s in samples if s.generator})


def select_split(samples: Sequence[Sample], purpose: str) -> list[Sample]:
    """Samples for `purpose`: "train" -> split == "train"; "eval" -> the "test" split if
    there is one, else "val" (GenImage's test set), else all samples (data without splits)."""
    if purpose == "train":
        return [s for s in samples if s.split == "train"]
    if purpose == "eval":
        for name in ("test", "val"):
            chosen = [s for s in samples if s.split == name]
            if chosen:
                return chosen
        return list(samples)
    raise ValueError(f"purpose must be 'train' or 'eval', got {purpose!r}")


def split_holdout(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out about `fraction` of `samples` (e.g. for early stopping and threshold fitting).

    Grouped by `Sample.group` (each file is its own group when empty), so no group is
    on both sides; stratified by label, and a fold holding both classes is preferred.
    Deterministic for a seed; both parts keep the input order.
    """
    samples = list(samples)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or not samples:
        return samples, []
    # A file's own group is its absolute path: a relative one sorted differently against photo
    # groups and changed the holdout with the working directory (same data, other results).
    groups = np.array([s.group or os.path.abspath(s.path) for s in samples])
    labels = np.array([-1 if s.label is None else int(s.label) for s in samples])
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise ValueError(f"cannot hold out a fraction of {len(samples)} samples that form a single group")
    n_splits = min(n_groups, max(2, round(1.0 / fraction)))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer members than folds; we handle that below.
        warnings.simplefilter("ignore", UserWarning)
        folds = [test for _, test in cv.split(np.zeros(len(samples)), labels, groups)]
    n_classes = len(set(labels.tolist()))
    target = fraction * len(samples)
    # Prefer folds that contain every class, then the size closest to the target.
    best = min(folds, key=lambda f: (len(set(labels[f].tolist())) < n_classes, abs(len(f) - target)))
    held = set(best.tolist())
    train = [s for i, s in enumerate(samples) if i not in held]
    holdout = [s for i, s in enumerate(samples) if i in held]
    return train, holdout


def with_photo_groups(samples: list[Sample], data_info: dict[str, Any]) -> list[Sample]:
    """Set Sample.group to the source photo of each real crop (and of its reconstruction), so
    the trainer's holdout never splits one photo's crops between training and validation."""
    sources = data_info.get("real", {}).get("crop_sources", {})
    recon = {name for name, sub in data_info.get("subsets", {}).items()
             if str(sub.get("ai_source", "")).startswith("reconstruction")}
    out = []
    for s in samples:
        photos = sources.get(s.split, [])
        idx = int(s.path.stem) if s.path.stem.isdigit() else -1
        from_photo = s.label == 0 or s.generator in recon
        group = photos[idx] if from_photo and 0 <= idx < len(photos) else ""
        out.append(replace(s, group=group) if group else s)
    return out
