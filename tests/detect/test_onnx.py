"""ONNX export and `--engine onnx`: every exportable registered detector scores real images as torch does
(within 1e-4, at a batch size other than the traced one); the others refuse with their reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from models.helpers import small_detector

from detect.helpers import make_checkpoint
from gendet.cli.main import main
from gendet.data.decode import decode_image
from gendet.data.preprocess import ImageTransform
from gendet.data.real_photos import list_photos
from gendet.detect import load_scan_model
from gendet.detect.onnx_export import ExportError, export_onnx
from gendet.models.checkpoint import save_checkpoint
from gendet.models.registry import DETECTORS, get_detector_class

pytest.importorskip("onnxruntime")
from gendet.detect.onnx_model import OnnxDetector, load_onnx_model  # noqa: E402

EXPORTABLE = [n for n in DETECTORS if get_detector_class(n).onnx_unsupported is None]
NOT_EXPORTABLE = [n for n in DETECTORS if n not in EXPORTABLE]


def real_batch(model, n: int = 3) -> torch.Tensor:
    transform = ImageTransform(model.preprocess, train=False)
    rng = np.random.default_rng(0)
    return torch.stack([transform(decode_image(p), rng) for p in list_photos()[:n]])


def small_checkpoint(name: str, tmp_path):
    torch.manual_seed(0)
    det = small_detector(name).eval()
    pp = det.preprocess("jpeg")
    save_checkpoint(tmp_path / name, det, {"preprocess": pp.to_dict(), "align": "jpeg", "threshold": 0.5,
                                           "threshold_source": "fixed"})
    return load_scan_model(tmp_path / name, "cpu")


def crops_checkpoint(tmp_path):
    """A probe scoring 4 crops an image, its zero-initialised head perturbed so that crops score differently."""
    torch.manual_seed(0)
    probe = small_detector("probe", crops=4).eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(tmp_path / "crops", probe, {"preprocess": probe.preprocess("jpeg").to_dict(), "threshold": 0.5,
                                                "threshold_source": "fixed"})
    return load_scan_model(tmp_path / "crops", "cpu")


def test_the_exportable_set_is_what_the_readme_says() -> None:
    assert EXPORTABLE == ["tiny_cnn", "resnet50", "cnnspot", "spec", "npr", "univfd", "dire_lite", "probe", "lite"]


def test_specs_matrix_dft_is_its_fft() -> None:
    from gendet.models.spec import dft_magnitude

    x = torch.randn(2, 3, 33, 20, generator=torch.Generator().manual_seed(0))
    ref = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1)).abs()
    assert torch.allclose(dft_magnitude(x), ref, atol=1e-5)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_onnx_scores_equal_torch_scores_on_real_images(name, tmp_path) -> None:
    model = small_checkpoint(name, tmp_path)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    onnx_model = load_onnx_model(path)
    x = real_batch(model)
    with torch.inference_mode():
        ref = model.detector({"image": x})["prob"].numpy()
    got = onnx_model.detector({"image": x})["prob"].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert (onnx_model.name, onnx_model.version, onnx_model.threshold) == (model.name, model.version, 0.5)
    assert onnx_model.preprocess == model.preprocess
    side = json.loads((tmp_path / f"{name}.onnx.json").read_text())
    assert side["preprocess"] == model.preprocess.to_dict() and side["format"] == "gendet-onnx-1"


@pytest.mark.parametrize("name", NOT_EXPORTABLE)
def test_the_others_refuse_with_their_reason(name, tmp_path) -> None:
    det = small_detector(name)
    model = type("M", (), {"detector": det})()
    with pytest.raises(ExportError, match="cannot be exported to ONNX: .+"):
        export_onnx(model, tmp_path / "x.onnx")


def test_export_then_detect_with_the_onnx_engine_gives_the_torch_records(capsys, tmp_path) -> None:
    from detect.helpers import make_good_images

    ckpt = make_checkpoint(tmp_path / "tiny", threshold=0.6, source="val")
    images = make_good_images(tmp_path / "imgs", 5)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    # no --engine: the default, local torch for a directory, onnx for an .onnx file (the only engine it runs on)
    runs = (([], ckpt, "torch.jsonl"), (["--engine", "onnx"], tmp_path / "m.onnx", "onnx.jsonl"),
            (["--engine", "onnx"], ckpt, "onnx_direct.jsonl"), ([], tmp_path / "m.onnx", "onnx_inferred.jsonl"))
    for engine, ck, out in runs:
        assert main(["detect", str(images[0].parent), "--checkpoint", str(ck), *engine, "--output",
                     str(tmp_path / out), "--workers", "1"]) == 0
    capsys.readouterr()
    torch_recs, *onnx_runs = ([json.loads(line) for line in (tmp_path / out).read_text().splitlines()]
                              for _, _, out in runs)
    for recs in onnx_runs:
        for a, b in zip(torch_recs, recs, strict=True):
            assert abs(a["score"] - b["score"]) < 1e-4
            assert {k: v for k, v in a.items() if k != "score"} == {k: v for k, v in b.items() if k != "score"}


def test_an_onnx_file_on_the_torch_engine_says_to_use_the_onnx_engine(capsys, tmp_path) -> None:
    from detect.helpers import make_good_images

    ckpt = make_checkpoint(tmp_path / "tiny")
    images = make_good_images(tmp_path / "imgs", 1)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    for engine in ("local", "ray"):
        assert main(["detect", str(images[0]), "--checkpoint", str(tmp_path / "m.onnx"), "--engine", engine]) == 2
        err = capsys.readouterr().err
        assert "is an ONNX model" in err and "--engine onnx" in err and "not a directory" not in err


def test_int8_export_is_smaller_and_close(tmp_path) -> None:
    model = small_checkpoint("lite", tmp_path)
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    int8 = export_onnx(model, tmp_path / "int8.onnx", quantize="int8")
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
    x = real_batch(model)
    a = load_onnx_model(fp32).detector({"image": x})["prob"].numpy()
    b = load_onnx_model(int8).detector({"image": x})["prob"].numpy()
    assert np.abs(a - b).max() < 0.2
    assert "int8" in json.loads((tmp_path / "int8.onnx.json").read_text())["quantized"]


def test_bad_files_and_threads(tmp_path) -> None:
    from gendet.detect.model import ModelSetupError

    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelSetupError):
        load_onnx_model(tmp_path / "junk.onnx")
    model = small_checkpoint("tiny_cnn", tmp_path)
    det = OnnxDetector(export_onnx(model, tmp_path / "t.onnx"))
    det.set_num_threads(1)
    n_torch = sum(p.numel() for p in model.detector.parameters())
    assert det.get_num_threads() == 1 and 0.9 * n_torch < det.num_parameters <= n_torch  # BatchNorm folded into convs


def test_threads_do_not_spin_unless_asked(tmp_path) -> None:
    """Spinning onnxruntime threads would take the cores the decoder processes need (see OnnxDetector._open)."""
    path = export_onnx(small_checkpoint("tiny_cnn", tmp_path), tmp_path / "t.onnx")
    key = "session.intra_op.allow_spinning"
    assert OnnxDetector(path)._session.get_session_options().get_session_config_entry(key) == "0"
    spinning = load_onnx_model(path, spinning=True).detector
    assert spinning._session.get_session_options().get_session_config_entry(key) == "1"


def test_batch_parallel_threads_score_as_intra_op_threads(tmp_path) -> None:
    """T threads run T chunks at once on one-thread sessions; the scores are those of chunks on a T-thread pool."""
    model = small_checkpoint("tiny_cnn", tmp_path)
    path = export_onnx(model, tmp_path / "t.onnx")
    batch = {"image": real_batch(model, 9)}
    per_chunk = OnnxDetector(path, threads=2)
    per_chunk.CPU_CHUNK_PIXELS = 4 * batch["image"].shape[-1] ** 2  # up to 4 images a run
    sizes = [len(c) for c in per_chunk._chunks(batch["image"])[0]]
    assert sizes == [2, 2, 2, 3]  # 3 runs of up to 4 would leave one thread 3 images: 4 runs, evenly sized
    pooled = OnnxDetector(path, threads=2, parallel="intra")
    assert per_chunk._pool is not None and per_chunk._pool._max_workers == 2 and pooled._pool is None
    assert per_chunk._session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(per_chunk(batch)["prob"], pooled(batch)["prob"], atol=1e-6)
    per_chunk.set_num_threads(1)
    assert per_chunk._pool is None and per_chunk.get_num_threads() == 1
    with pytest.raises(ValueError, match="parallel"):
        OnnxDetector(path, parallel="both")


def test_pixels_normalised_in_the_chunk_threads_score_as_a_normalised_batch(tmp_path) -> None:
    """score_pixels (what a scan calls with the decoders' uint8 images) gives the bits of __call__ on the
    stacked, normalised batch: as a list or a batch, with crops, on one thread or two."""
    from gendet.data.preprocess import normalize
    from gendet.detect.pipeline import score_batch, score_entries

    crops_model = crops_checkpoint(tmp_path)
    model = small_checkpoint("tiny_cnn", tmp_path)
    onnx_model = load_onnx_model(export_onnx(model, tmp_path / "t.onnx"))
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (9, 3, 32, 32), dtype=np.uint8))
    crops = torch.from_numpy(rng.integers(0, 256, (5, 4, 3, 32, 32), dtype=np.uint8))
    for threads, run_pixels in ((2, 32 * 32), (1, 32 * 32), (2, OnnxDetector.CPU_CHUNK_PIXELS)):
        for m, path, batch in ((crops_model, export_onnx(crops_model, tmp_path / "c.onnx"), crops),
                               (model, tmp_path / "t.onnx", pixels)):
            det = OnnxDetector(path, threads=threads)
            det.CPU_CHUNK_PIXELS = run_pixels  # one crop a run (crops averaged here), or whole images
            expected = det({"image": normalize(batch, m.preprocess)})["prob"].numpy()
            for given in (batch, list(batch), list(batch[:3])):
                got = det.score_pixels(given, m.preprocess)["prob"].numpy()
                np.testing.assert_array_equal(got, expected[:len(given)])
    onnx_model.detector = det
    expected = det({"image": normalize(pixels, model.preprocess)})["prob"].numpy().astype(np.float64)
    np.testing.assert_array_equal(score_batch(onnx_model, pixels, torch.device("cpu")), expected)
    entries = [(f"{i}.jpg", p, None, None) for i, p in enumerate(pixels)]
    records = score_entries(onnx_model, entries, torch.device("cpu"))
    np.testing.assert_array_equal([r.score for r in records], expected)


class RecordingSession:
    """An onnxruntime session that records the input shape of every run."""

    def __init__(self, session) -> None:
        self.session, self.shapes = session, []

    def run(self, names, feed):
        self.shapes.append(feed["image"].shape)
        return self.session.run(names, feed)


def test_large_crops_run_one_a_session_and_average_to_the_graphs_scores(tmp_path) -> None:
    """On the CPU a crop of CPU_CHUNK_PIXELS or more runs alone (its activations stay in the caches); the mean
    of its crops' logits is the score the graph gives the whole image, and torch's within 1e-4."""
    model = crops_checkpoint(tmp_path)
    path = export_onnx(model, tmp_path / "c.onnx")
    x = real_batch(model, 3)  # (3, 4, 3, S, S)
    size = x.shape[-1]
    with torch.inference_mode():
        crop_logits = model.detector({"image": x.flatten(0, 1)})["logit"]
    assert crop_logits.std() > 1e-3  # the mean below is of crops that differ
    whole = OnnxDetector(path, threads=1)
    whole.CPU_CHUNK_PIXELS = 4 * size * size
    per_crop = OnnxDetector(path, threads=2)
    per_crop.CPU_CHUNK_PIXELS = size * size
    per_crop._session = RecordingSession(per_crop._session)
    got, ref = per_crop({"image": x}), whole({"image": x})
    assert per_crop._session.shapes == [(1, 1, 3, size, size)] * 12
    np.testing.assert_allclose(got["logit"], ref["logit"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(got["prob"], torch.sigmoid(got["logit"]), atol=0, rtol=0)
    np.testing.assert_allclose(got["prob"], ref["prob"], atol=1e-6, rtol=0)
    with torch.inference_mode():
        np.testing.assert_allclose(got["prob"], model.detector({"image": x})["prob"], atol=1e-4, rtol=0)


def test_a_graph_with_a_fixed_crop_axis_runs_whole_images(tmp_path) -> None:
    """Graphs exported before the crop axis was dynamic take exactly `crops` crops: they still score, by image."""
    import onnx

    model = crops_checkpoint(tmp_path)
    path = export_onnx(model, tmp_path / "c.onnx")
    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 4  # as `gendet export` wrote it before
    onnx.save(proto, str(tmp_path / "fixed.onnx"))
    x = real_batch(model, 3)
    ref = OnnxDetector(path)({"image": x})["prob"]
    fixed = OnnxDetector(tmp_path / "fixed.onnx", threads=2)
    fixed.CPU_CHUNK_PIXELS = x.shape[-1] ** 2
    fixed._session = RecordingSession(fixed._session)
    np.testing.assert_allclose(fixed({"image": x})["prob"], ref, atol=1e-6, rtol=0)
    assert not fixed._crops_separable and fixed._session.shapes == [(1, 4, 3, x.shape[-1], x.shape[-1])] * 3
