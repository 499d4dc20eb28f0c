"""UniGenDet: SMSA's sequence and mask, expert routing, generation, explanations' tokenizer."""

from __future__ import annotations

import pytest
import torch

from gendet.models import create_detector
from gendet.models.checkpoint import load_checkpoint, save_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.config import diga_layer
from gendet.models.unigendet.mot import GEN, UND
from gendet.models.unigendet.tokenizer import BOS, EOS, SPECIALS, WordTokenizer, build_vocab

SMALL = dict(UniGenDet.small_config)


def small(**kw) -> UniGenDet:
    torch.manual_seed(0)
    return create_detector("unigendet", **{**SMALL, **kw}).eval()


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_smsa_sequence_has_both_views_in_one_bidirectional_block() -> None:
    m = small()
    x, experts, mask, seg = m.detection_sequence(images(), text_ids=torch.tensor([[BOS, 3, 2]] * 2))
    v, z, a, q = seg["vision"], seg["latent"], seg["answer"], seg["query"]
    assert v.stop - v.start == m.vision_grid ** 2 and z.stop - z.start == m.latent_grid ** 2
    assert (experts[v] == UND).all() and (experts[z] == GEN).all() and (experts[a] == UND).all()
    assert experts[q].item() == UND
    ctx = slice(0, a.start)
    assert mask[:, ctx, ctx].all()  # query, vision and clean latents all read each other
    assert mask[:, v, z].all() and mask[:, z, v].all()
    assert not mask[:, ctx, a].any()  # the image context never reads the answer
    assert mask[:, a, ctx].all()
    nt = a.stop - a.start
    assert torch.equal(mask[0, a, a], torch.tril(torch.ones(nt, nt, dtype=torch.bool)))  # causal answer


def test_without_smsa_there_are_no_latent_tokens() -> None:
    m = small(smsa=False)
    x, experts, mask, seg = m.detection_sequence(images())
    assert seg["latent"].stop == seg["latent"].start
    assert (experts == UND).all()
    assert x.shape[1] == 1 + m.vision_grid ** 2 + 1


def test_condition_dropout_hides_a_view_from_everyone_else() -> None:
    m = small()
    drop_v = torch.tensor([True, False])
    _, _, mask, seg = m.detection_sequence(images(), drop_vision=drop_v, drop_latent=torch.tensor([False, False]))
    v = seg["vision"]
    others = torch.ones(mask.shape[1], dtype=torch.bool)
    others[v] = False
    assert not mask[0][others][:, v].any()  # sample 0: nobody else reads its vision tokens
    assert mask[0, v, v].all()  # they still attend to themselves (no empty softmax row)
    assert mask[1][others][:, v][: seg["answer"].start - (v.stop - v.start)].all()  # sample 1 untouched


def test_detector_reads_the_generation_view_only_with_smsa() -> None:
    for smsa, expect_change in ((True, True), (False, False)):
        m = small(smsa=smsa)
        with torch.no_grad():
            before = m({"image": images()})["logit"]
            for p in m.transformer.expert_parameters(GEN):
                p.add_(0.5 * torch.randn_like(p))
            after = m({"image": images()})["logit"]
        assert (not torch.allclose(before, after)) == expect_change


def test_generation_tokens_are_routed_through_the_generation_expert() -> None:
    m = small().train()
    torch.nn.init.normal_(m.flow_out.weight, std=0.1)  # zero-initialised: no gradient would pass it
    vel = m.generation_outputs(torch.randn(2, 4, 8, 8), torch.rand(2), torch.zeros(2, dtype=torch.long))["velocity"]
    vel.pow(2).mean().backward()
    und_layer = m.transformer.layers[-1].experts[UND]
    gen_layer = m.transformer.layers[-1].experts[GEN]
    assert gen_layer.mlp[0].weight.grad is not None and gen_layer.mlp[0].weight.grad.abs().sum() > 0
    # the class token (understanding expert) feeds the noise tokens through attention, not its MLP output
    assert und_layer.qkv.weight.grad is not None and und_layer.qkv.weight.grad.abs().sum() > 0
    assert und_layer.mlp[0].weight.grad is None or und_layer.mlp[0].weight.grad.abs().sum() == 0


def test_head_shape_and_label_convention() -> None:
    m = small()
    out = m.detection_outputs(images(3))
    assert out["logits2"].shape == (3, 2)
    head = m.det_head
    assert isinstance(head[0], torch.nn.LayerNorm) and head[1].out_features == m.hidden // 4
    assert head[3].out_features == 2
    with torch.no_grad():
        logit = m({"image": images(3)})["logit"]
    torch.testing.assert_close(logit, out["logits2"][:, 1].detach() - out["logits2"][:, 0].detach())


def test_generate_is_deterministic_and_batch_independent() -> None:
    m = small()
    a = m.generate(5, seed=3, steps=2, batch_size=5)
    b = m.generate(5, seed=3, steps=2, batch_size=2)
    c = m.generate(5, seed=4, steps=2, batch_size=5)
    assert a.dtype == torch.uint8 and a.shape == (5, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="classes"):
        m.generate(2, seed=0, classes=torch.tensor([0, 5]), steps=1)


def test_checkpoint_round_trip_keeps_generation_and_vocab(tmp_path) -> None:
    vocab = build_vocab(["the edges are too smooth", "sharp natural texture"])
    m = small(vocab=vocab)
    save_checkpoint(tmp_path, m, {"threshold": 0.5, "threshold_source": "fixed"})
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.tokenizer is not None and loaded.tokenizer.vocab == vocab
    assert torch.equal(loaded.generate(2, seed=1, steps=2), m.generate(2, seed=1, steps=2))
    texts = loaded.generate_explanation({"image": images()}, max_len=6)
    assert isinstance(texts, list) and len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_relevance_is_a_map_on_the_vision_grid() -> None:
    m = small()
    r = m.relevance({"image": images()})
    assert r.shape == (2, m.vision_grid, m.vision_grid) and (r >= 0).all() and torch.isfinite(r).all()


def test_presets_change_numbers_only() -> None:
    tiny = create_detector("unigendet")
    assert 2e6 < tiny.num_parameters < 6e6  # "a few million parameters"
    with torch.device("meta"):
        bigger = create_detector("unigendet", preset="small")
    assert bigger.num_parameters > 10 * tiny.num_parameters
    assert type(bigger) is type(tiny) and bigger.config["smsa"] and bigger.config["image_size"] == 128
    with pytest.raises(ValueError, match="preset"):
        create_detector("unigendet", preset="huge")


def test_diga_layer_defaults_to_about_thirty_percent_of_depth() -> None:
    assert diga_layer(6, 0) == 2 and diga_layer(24, 0) == 7 and diga_layer(2, 0) == 1 and diga_layer(6, 4) == 4
    with pytest.raises(ValueError):
        diga_layer(6, 7)


def test_tokenizer_round_trip_and_unknown_words() -> None:
    vocab = build_vocab(["This is a fake image.", "The texture is too smooth, unlike a photo."])
    assert vocab[: len(SPECIALS)] == list(SPECIALS)
    assert vocab == build_vocab(["This is a fake image.", "The texture is too smooth, unlike a photo."])
    tok = WordTokenizer(vocab)
    ids = tok.encode("This is a fake image.", max_len=20)
    assert ids[0] == BOS and ids[-1] == EOS
    assert tok.decode(ids) == "this is a fake image."
    assert "<unk>" in tok.decode(tok.encode("a purple elephant", max_len=20))
    assert len(tok.encode("a " * 50, max_len=8)) == 8
