"""UniGenDet's stages: GDUF's loss weights and batches, DIGA's gradients and its loud failures, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gendet.data.layouts import read_samples, select_split
from gendet.data.sample import Sample
from gendet.models import create_detector
from gendet.models.checkpoint import WEIGHTS_FILE, load_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.mot import GEN, UND
from gendet.models.unigendet.objectives import condition_classes, diga_loss, gduf_loss
from gendet.models.unigendet.tokenizer import build_vocab
from gendet.training.unified import UnifiedConfig, UnifiedRun, train_unified

SMALL = dict(UniGenDet.small_config)


def model(**kw) -> UniGenDet:
    torch.manual_seed(0)
    return create_detector("unigendet", **{**SMALL, **kw})


@pytest.fixture
def data(genimage_root: Path) -> tuple[list[Sample], list[Sample]]:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")
    real = [s for s in samples if s.label == 0]
    fake = [s for s in samples if s.label == 1]
    return real[:8] + fake[:8], real[8:10] + fake[8:10]


def cfg(**kw) -> UnifiedConfig:
    return UnifiedConfig(**{"steps": 3, "det_batch": 4, "lr": 1e-3, "warmup": 0, "progress": False,
                            "save_every_steps": 0, **kw})


def test_gduf_loss_is_the_weighted_sum(data, tmp_path) -> None:
    train, val = data
    texts = ["the texture is too smooth", "natural sensor noise everywhere"]
    train = [replace(s, explanation=texts[s.label]) for s in train]
    m = model(vocab=build_vocab(texts))
    run = UnifiedRun(m, train, val, m.preprocess("png"), cfg(), tmp_path)
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    parts = gduf_loss(run.model, img, torch.tensor([0, 1, 0, 1]), [texts[0], texts[1], None, texts[1]], img[:1],
                      run.weights, run.has_text)
    assert set(parts) == {"loss", "ce_cls", "ce_text", "mse_flow"}
    expected = 1.0 * parts["ce_text"] + 0.2 * parts["ce_cls"] + 1.0 * parts["mse_flow"]
    torch.testing.assert_close(parts["loss"], expected)
    assert run.has_text


def test_gduf_without_explanations_has_no_text_term(data, tmp_path) -> None:
    train, val = data
    m = model()
    run = UnifiedRun(m, train, val, m.preprocess("png"), cfg(), tmp_path)
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    parts = gduf_loss(run.model, img, torch.tensor([0, 1, 0, 1]), [None] * 4, img[:1], run.weights, run.has_text)
    assert "ce_text" not in parts and not run.has_text
    torch.testing.assert_close(parts["loss"], 0.2 * parts["ce_cls"] + parts["mse_flow"])


def test_gduf_batches_are_label_balanced_and_five_to_one(data, tmp_path) -> None:
    train, val = data
    m = model()
    c = cfg(det_batch=10)
    run = UnifiedRun(m, train, val, m.preprocess("png"), c, tmp_path)
    assert c.generation_batch == 2  # 10 detection samples : 2 generation samples
    for step in range(5):
        det, gen = run.batches.indices(step)
        labels = [train[i].label for i in det]
        assert len(det) == 10 and labels.count(0) == labels.count(1) == 5
        assert len(gen) == 2 and all(train[i].label == 0 for i in gen)  # generation data are real images
    assert run.batches.indices(3) == run.batches.indices(3)


def _diga_run(data, tmp_path, **kw) -> tuple[UnifiedRun, UniGenDet]:
    train, val = data
    m = model()
    torch.nn.init.normal_(m.flow_out.weight, std=0.1)
    teacher = m.frozen_copy()
    run = UnifiedRun(m, train, val, m.preprocess("png"), cfg(stage="diga", **kw), tmp_path, teacher=teacher)
    return run, teacher


def test_diga_trains_only_the_generation_expert(data, tmp_path) -> None:
    run, teacher = _diga_run(data, tmp_path)
    m = run.model
    parts = diga_loss(run.model, run.teacher, torch.rand(4, 3, 32, 32) * 2 - 1, run.weights)
    torch.testing.assert_close(parts["loss"], parts["mse_flow"] + 0.5 * parts["align"])
    torch.testing.assert_close(parts["align"], 1 - parts["cos"])
    parts["loss"].backward()
    gen_ids = {id(p) for p in m.generation_parameters()}
    for name, p in m.named_parameters():
        if id(p) in gen_ids:
            assert p.requires_grad, name
        else:
            assert not p.requires_grad and p.grad is None, f"{name} is not part of the generation expert"
    assert m.transformer.layers[0].experts[GEN].qkv.weight.grad.abs().sum() > 0
    assert m.align_mlp[0].weight.grad.abs().sum() > 0  # the projector learns from the alignment term
    assert m.transformer.layers[0].experts[UND].qkv.weight.grad is None
    assert all(p.grad is None for p in teacher.parameters())  # targets carry no gradient
    assert all(id(p) in gen_ids for g in run.opt.optimizer.param_groups for p in g["params"])


def test_diga_alignment_targets_are_the_detectors_layer_k_vision_states(data, tmp_path) -> None:
    run, teacher = _diga_run(data, tmp_path)
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    k = run.model.diga_k
    det = teacher.detection_outputs(img, keep_layers=(k,))
    vis = det["layers"][k][:, det["segments"]["vision"]]
    g, lg = teacher.vision_grid, run.model.latent_grid
    target = F.interpolate(vis.transpose(1, 2).reshape(2, -1, g, g), size=(lg, lg), mode="bilinear",
                           align_corners=False).flatten(2).transpose(1, 2)
    with torch.no_grad():
        torch.manual_seed(5)  # replay diga_loss's random draws: class dropout, then the flow noise
        classes = condition_classes(run.model, 2, run.model.config["cond_dropout"]["text"], run.device)
        _, out = run.model.flow_loss(img, classes, keep_layers=(k,))
        pred = run.model.align_mlp(out["layers"][k])
        cos = F.cosine_similarity(pred, F.normalize(target, dim=-1), dim=-1).mean()
        torch.manual_seed(5)
        parts = diga_loss(run.model, run.teacher, img, run.weights)
    torch.testing.assert_close(parts["cos"], cos)


def test_diga_fails_loudly_on_nan_and_on_shape_mismatch(data, tmp_path) -> None:
    run, _ = _diga_run(data, tmp_path)
    nan = torch.full((2, 3, 32, 32), float("nan"))
    batch = {"errors": [], "image": nan, "index": torch.tensor([0, 1]), "position": [0, 1],
             "label": torch.tensor([0, 0]), "path": ["a", "b"]}
    with pytest.raises(FloatingPointError, match="non-finite diga loss"):
        run._step(batch)
    run.model.align_mlp[2] = torch.nn.Linear(4 * run.model.hidden, run.model.hidden + 1)
    with pytest.raises(RuntimeError, match="DIGA shape mismatch"):
        diga_loss(run.model, run.teacher, torch.rand(2, 3, 32, 32) * 2 - 1, run.weights)


def test_diga_needs_a_teacher(data, tmp_path) -> None:
    train, val = data
    m = model()
    with pytest.raises(ValueError, match="teacher"):
        UnifiedRun(m, train, val, m.preprocess("png"), cfg(stage="diga"), tmp_path)


def test_a_stage_resumes_to_the_same_weights(data, tmp_path) -> None:
    train, val = data
    c = cfg(steps=4, save_every_steps=2)
    straight = model()
    train_unified(straight, train, val, straight.preprocess("png"), c, tmp_path / "a")
    interrupted = model()
    train_unified(interrupted, train, val, interrupted.preprocess("png"), c, tmp_path / "b", max_steps=2)
    resumed = model()
    summary = train_unified(resumed, train, val, resumed.preprocess("png"), c, tmp_path / "b", resume=True)
    assert summary["global_step"] == 4
    a, b = load_file(str(tmp_path / "a" / WEIGHTS_FILE)), load_file(str(tmp_path / "b" / WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    loaded, config = load_checkpoint(tmp_path / "a")
    assert config["unified"]["stage"] == "gduf" and config["text_loss"].startswith("absent")
    assert config["threshold_val"] is not None and loaded.name == "unigendet"


def test_separate_training_switches(data, tmp_path) -> None:
    train, val = data
    det_only = model()
    head_before = det_only.flow_out.weight.detach().clone()
    train_unified(det_only, train, val, det_only.preprocess("png"), cfg(train_generation=False), tmp_path / "d")
    assert torch.equal(det_only.flow_out.weight, head_before)  # no generation data: velocity head untouched
    gen_only = model()
    det_before = gen_only.det_head[1].weight.detach().clone()
    train_unified(gen_only, train, val, gen_only.preprocess("png"), cfg(train_detection=False), tmp_path / "g")
    assert torch.equal(gen_only.det_head[1].weight, det_before)
    with pytest.raises(ValueError, match="nothing to train"):
        cfg(train_detection=False, train_generation=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gduf_and_diga_run_on_cuda_with_bf16_autocast(data, tmp_path) -> None:
    train, val = data
    m = model()
    summary = train_unified(m, train, val, m.preprocess("png"), cfg(device="cuda", amp="bf16"), tmp_path / "g")
    assert summary["global_step"] == 3
    student, _ = load_checkpoint(tmp_path / "g", "cuda")
    teacher = student.frozen_copy()
    out = train_unified(student, train, val, student.preprocess("png"), cfg(stage="diga", device="cuda", amp="bf16"),
                        tmp_path / "d", teacher=teacher)
    assert out["global_step"] == 3
    assert student.generate(2, seed=0, steps=2).shape == (2, 3, 32, 32)
