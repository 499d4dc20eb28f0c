"""The benchmark run (gendet.bench.bench) and its report, on stand-in generators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from generation.standins import SIZE, BlurRecon, SmoothNoise

from gendet.bench.bench import run_bench, write_results
from gendet.bench.presets import BenchPreset, DetectorSpec
from gendet.bench.tiny_genimage import build_tiny_genimage
from gendet.data.layouts import read_samples, with_photo_groups
from gendet.evaluation.fidelity import TinyCNNExtractor
from gendet.report.bench_report import build_bench_report

PRESET = BenchPreset(
    name="test",
    image_size=SIZE,
    generators=("smooth_noise", "blur_recon"),
    n_per_split={"train": 24, "val": 12},
    detector_specs=(
        DetectorSpec("tiny_cnn", "tiny_cnn", {"image_size": SIZE}, {"epochs": 1, "batch_size": 16, "lr": 1e-3}),
        DetectorSpec("univfd", "univfd (needs weights)", {}, {}, needs_weights=True),
    ),
    degradations=("jpeg_30", "blur_3"),
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("bench")
    root = tmp / "data"
    info = build_tiny_genimage(root, [SmoothNoise(), BlurRecon()], size=SIZE, n_per_split=PRESET.n_per_split,
                               extractor=TinyCNNExtractor(dim=8), cache_dir=tmp / "cache", progress=False)
    return root, info


def test_bench_runs_both_tasks_writes_results_and_report(data, tmp_path):
    root, info = data
    out = tmp_path / "run"
    res = run_bench(PRESET, root, info, out, seed=0, progress=False, command="gendet bench --preset test")
    assert res["subsets"] == ["blur_recon", "smooth_noise"]
    assert "univfd (needs weights)" in res["skipped_detectors"]
    m = res["matrix"]["tiny_cnn"]["acc"]
    assert m["rows"] == m["columns"] == ["blur_recon", "smooth_noise"]
    assert all(v is not None and 0.0 <= v <= 1.0 for row in m["values"] for v in row)
    deg = res["degradations"]["tiny_cnn"]["smooth_noise"]["table"]
    assert list(deg) == ["none", "jpeg_30", "blur_3"]
    # Each cell is an ordinary run directory.
    assert (out / "runs" / "tiny_cnn" / "smooth_noise" / "model.safetensors").is_file()
    path = write_results(res, out)
    assert json.loads(path.read_text())["matrix"]["tiny_cnn"]["acc"]["values"] == m["values"]
    html, md = build_bench_report(res, out, data_root=root)
    text = html.read_text()
    for section in ("Task 1", "Task 2", "Sample grids", "KID", "skipped"):
        assert section in text
    assert md.is_file()

    # A rerun reuses every finished cell; a fresh run with the same seed reproduces the matrix.
    again = run_bench(PRESET, root, info, out, seed=0, progress=False)
    assert again["timings"]["cells_reused"] == 2
    assert again["matrix"]["tiny_cnn"]["acc"]["values"] == m["values"]
    fresh = run_bench(PRESET, root, info, tmp_path / "fresh", seed=0, progress=False)
    assert fresh["timings"]["cells_reused"] == 0
    assert fresh["matrix"]["tiny_cnn"]["auc"]["values"] == res["matrix"]["tiny_cnn"]["auc"]["values"]


def test_photo_groups_follow_crop_sources(data):
    root, info = data
    samples = with_photo_groups(read_samples(root, layout="genimage"), info)
    sources = info["real"]["crop_sources"]
    for s in samples:
        if s.label == 0 or s.generator == "blur_recon":
            assert s.group == sources[s.split][int(s.path.stem)]
        else:
            assert s.group == ""
