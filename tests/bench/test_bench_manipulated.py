"""`gendet bench --manipulated`: GAMMA's manipulated subset joins the benchmark matrix as one more subset."""

from __future__ import annotations

from data.manipulations.helpers import make_base_root

from gendet.bench.bench import add_manipulated_subset, run_bench
from gendet.bench.presets import BenchPreset, DetectorSpec

PRESET = BenchPreset(name="test", image_size=64, generators=(), n_per_split={},
                     detector_specs=(DetectorSpec("tiny_cnn", "tiny_cnn", {"image_size": 64},
                                             {"epochs": 1, "batch_size": 8, "lr": 1e-3}),),
                     degradations=("jpeg_30",))


def test_manipulated_subset_is_one_more_cell_and_changes_the_cell_key(tmp_path) -> None:
    base = make_base_root(tmp_path / "data", subsets=("latent_flow",), n={"train": 12, "val": 6})
    info = {"key": "base", "subsets": {"latent_flow": {"family": "test"}}}
    extra, with_manip = add_manipulated_subset(base, info, progress=False)
    assert (tmp_path / "data-manipulated" / "manipulated").is_dir()
    assert set(with_manip["subsets"]) == {"latent_flow", "manipulated"} and with_manip["key"] != "base"
    fakes = [s for s in extra if s.label == 1]
    assert fakes and all(s.mask is not None and s.mask.is_file() for s in fakes)
    assert {s.group for s in extra} - {""}, "manipulated crops keep their source photo as group"
    res = run_bench(PRESET, base, with_manip, tmp_path / "run", progress=False, extra_samples=extra)
    assert res["subsets"] == ["latent_flow", "manipulated"]
    assert res["matrix"]["tiny_cnn"]["auc"]["rows"] == ["latent_flow", "manipulated"]
    again, _ = add_manipulated_subset(base, info, progress=False)  # cached, same samples
    assert [s.path for s in again] == [s.path for s in extra]
