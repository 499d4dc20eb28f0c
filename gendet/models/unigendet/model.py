"""UniGenDet at gendet's scale: one mixture-of-transformers that generates and detects.

Sequences (every token belongs to the understanding (U) or the generation (G) expert):

detection  [Q:U] [vision x Nv : U] [clean latents x Nz : G, t = 0] [answer: <bos> words : U]
generation [class : U] [noisy latents x Nz : G, t]

SMSA: in a detection sequence the image enters twice, as vision-encoder tokens and as
clean latent tokens of the autoencoder, and Q, vision and latent tokens all attend to
each other in one attention; the answer tokens attend to all of them and causally to
each other. `smsa=False` drops the latent tokens (vision only), for the ablation.
The detection head (LayerNorm -> Linear(h, h/4) -> ReLU -> Linear(h/4, 2)) reads the
hidden state at the first answer position (<bos>), which also predicts the first word
of the explanation when the model has a text head.

Labels: gendet's 1 = generated. The reference data use 1 = real; class index 1 of our
head is "generated", so `logit = l[1] - l[0]` is the log-odds of generated.

Generation: rectified flow on normalised latents (gendet.generation.flow), class-
conditioned with a null class for condition dropout and classifier-free guidance.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gendet.generation.autoencoder import Autoencoder
from gendet.generation.blocks import timestep_embedding
from gendet.generation.flow import interpolate, sample_ode, sample_t, velocity_target
from gendet.models.base import Detector
from gendet.models.unigendet.config import COND_DROPOUT, PRESETS, diga_layer
from gendet.models.unigendet.mot import GEN, UND, MoTTransformer
from gendet.models.unigendet.tokenizer import BOS, EOS, PAD, SPECIALS, WordTokenizer


class VisionEncoder(nn.Module):
    """A small CNN down to a (size/patch)^2 grid of `hidden`-d patch tokens: per stage a stride-2
    convolution, then `blocks` residual 3x3 convolutions (GroupNorm, GELU). Convolutions before the
    tokens give the detector the local, high-frequency view that a linear patch embedding lacks."""

    def __init__(self, hidden: int, patch: int, blocks: int = 1) -> None:
        super().__init__()
        n = patch.bit_length() - 1
        if patch < 2 or 2 ** n != patch:
            raise ValueError(f"vision_patch must be a power of two >= 2, got {patch}")
        widths = [min(hidden, 32 * 2 ** i) for i in range(n - 1)] + [hidden]
        self.stages = nn.ModuleList()
        ch = 3
        for w in widths:
            stage = nn.ModuleList([nn.Conv2d(ch, w, 3, stride=2, padding=1)])
            for _ in range(blocks):
                stage.append(nn.Sequential(nn.GroupNorm(min(8, w), w), nn.GELU(), nn.Conv2d(w, w, 3, padding=1)))
            self.stages.append(stage)
            ch = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage[0](x)
            for block in stage[1:]:
                x = x + block(x)
        return x.flatten(2).transpose(1, 2)  # (B, N, h)


def patchify(z: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) latents -> (B, (H/p)(W/p), C p p) tokens, row-major."""
    b, c, hh, ww = z.shape
    z = z.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(b, (hh // p) * (ww // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, c: int, g: int) -> torch.Tensor:
    """The inverse of `patchify` for a g x g token grid of C-channel p x p patches."""
    z = tokens.reshape(tokens.shape[0], g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return z.reshape(tokens.shape[0], c, g * p, g * p)


def detection_head(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden // 4), nn.ReLU(), nn.Linear(hidden // 4, 2))


def alignment_mlp(hidden: int) -> nn.Sequential:
    """DIGA's projector of generation states: Linear(h, 4h) -> GELU -> Linear(4h, h)."""
    return nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))


class UniGenDet(Detector):
    name = "unigendet"
    onnx_unsupported = 'its mixture-of-transformers reshapes sequences by sizes the tracer fixes to the traced batch'
    description = ("UniGenDet (scaled down): mixture-of-transformers generator + detector with SMSA, "
                   "GDUF joint training and DIGA alignment; rectified flow in an autoencoder latent space")
    default_config: ClassVar[dict[str, Any]] = {
        "preset": "tiny",
        **PRESETS["tiny"],
        "mean": [0.5, 0.5, 0.5],  # inputs in [-1, 1]: the autoencoder's range
        "std": [0.5, 0.5, 0.5],
        "mlp_ratio": 4.0,
        "vision_blocks": 1,
        "ae_channels": [24, 48, 96],  # = the latent_flow generator's autoencoder
        "z_ch": 4,
        "ae_blocks": 1,
        "smsa": True,
        "num_classes": 1,
        "vocab": [],  # explanation vocabulary; empty = no text head
        "max_text_len": 40,
        "diga_layer": 0,
        "cond_dropout": dict(COND_DROPOUT),
        "cfg_scale": 1.5,
        "sample_steps": 12,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "hidden": 32, "depth": 2, "heads": 2,
                                              "vision_patch": 8, "ae_channels": [8, 16, 16]}

    def __init__(self, **config: Any) -> None:
        preset = config.get("preset", "tiny")
        if preset not in PRESETS:
            raise ValueError(f"unknown unigendet preset {preset!r}; available: {sorted(PRESETS)}")
        super().__init__(**{**PRESETS[preset], **config})
        c = self.config
        h, size = int(c["hidden"]), int(c["image_size"])
        self.hidden = h
        self.autoencoder = Autoencoder(tuple(c["ae_channels"]), int(c["z_ch"]), int(c["ae_blocks"]), kl=True)
        self.autoencoder.requires_grad_(False)
        self.register_buffer("latent_mean", torch.zeros(1, int(c["z_ch"]), 1, 1))
        self.register_buffer("latent_std", torch.ones(1, int(c["z_ch"]), 1, 1))
        lat = size // self.autoencoder.factor
        p = int(c["latent_patch"])
        if size % self.autoencoder.factor or lat % p or size % int(c["vision_patch"]):
            raise ValueError(f"image_size {size} must be divisible by the autoencoder factor "
                             f"{self.autoencoder.factor} x latent_patch {p} and by vision_patch {c['vision_patch']}")
        self.latent_grid = lat // p
        self.vision_grid = size // int(c["vision_patch"])
        patch_dim = int(c["z_ch"]) * p * p
        self.vision = VisionEncoder(h, int(c["vision_patch"]), int(c["vision_blocks"]))
        self.vision_pos = nn.Parameter(torch.zeros(1, self.vision_grid ** 2, h))
        self.latent_in = nn.Linear(patch_dim, h)
        self.latent_pos = nn.Parameter(torch.zeros(1, self.latent_grid ** 2, h))
        self.time_mlp = nn.Sequential(nn.Linear(h, 4 * h), nn.SiLU(), nn.Linear(4 * h, h))
        self.flow_out = nn.Linear(h, patch_dim)
        self.query = nn.Parameter(torch.zeros(1, 1, h))
        self.class_embed = nn.Embedding(int(c["num_classes"]) + 1, h)  # last index = null class
        self.tokenizer = WordTokenizer(list(c["vocab"])) if c["vocab"] else None
        # without a text head only the special tokens exist (<bos> is the answer position)
        self.text_embed = nn.Embedding(len(c["vocab"]) if c["vocab"] else len(SPECIALS), h)
        self.text_pos = nn.Parameter(torch.zeros(1, int(c["max_text_len"]), h))
        self.transformer = MoTTransformer(h, int(c["depth"]), int(c["heads"]), float(c["mlp_ratio"]))
        self.det_head = detection_head(h)
        self.align_mlp = alignment_mlp(h)
        self.diga_k = diga_layer(int(c["depth"]), int(c["diga_layer"]))
        self._init_weights()

    def _init_weights(self) -> None:
        for prm in (self.vision_pos, self.latent_pos, self.query, self.text_pos):
            nn.init.normal_(prm, std=0.02)
        nn.init.zeros_(self.flow_out.weight)  # start as v = 0, the usual DiT output init
        nn.init.zeros_(self.flow_out.bias)

    # ---- latent space ----------------------------------------------------------------------
    def load_autoencoder(self, ae: Autoencoder, latent_mean: torch.Tensor, latent_std: torch.Tensor) -> None:
        """Adopt a trained autoencoder (e.g. the shipped latent_flow generator's) and its latent statistics."""
        self.autoencoder.load_state_dict(ae.state_dict(), strict=True)
        self.latent_mean.copy_(latent_mean.reshape_as(self.latent_mean))
        self.latent_std.copy_(latent_std.reshape_as(self.latent_std))

    def train(self, mode: bool = True) -> UniGenDet:
        super().train(mode)
        self.autoencoder.eval()  # frozen, always in inference behaviour
        return self

    @torch.no_grad()
    def encode_latents(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Images in [-1, 1] -> normalised latents (posterior mean, or a posterior sample)."""
        mean, logvar = self.autoencoder.encode(x.float())
        z = mean if not sample or logvar is None else mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return (z - self.latent_mean) / self.latent_std

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z * self.latent_std + self.latent_mean)

    def _patchify(self, z: torch.Tensor) -> torch.Tensor:
        return patchify(z, int(self.config["latent_patch"]))

    def _unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        return unpatchify(tokens, int(self.config["latent_patch"]), int(self.config["z_ch"]), self.latent_grid)

    def _latent_tokens(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.hidden).to(z.dtype))
        return self.latent_in(self._patchify(z)) + self.latent_pos + temb[:, None, :]

    # ---- detection -------------------------------------------------------------------------
    def detection_sequence(
        self, image: torch.Tensor, text_ids: torch.Tensor | None = None,
        drop_vision: torch.Tensor | None = None, drop_latent: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, slice]]:
        """Tokens, experts (L,), mask (B, L, L) and the segments of a detection sequence."""
        b = image.shape[0]
        vis = self.vision(image) + self.vision_pos
        parts = [self.query.expand(b, -1, -1), vis]
        experts = [UND] * (1 + vis.shape[1])
        nz = 0
        if self.config["smsa"]:
            lat = self._latent_tokens(self.encode_latents(image), torch.zeros(b, device=image.device))
            parts.append(lat)
            nz = lat.shape[1]
            experts += [GEN] * nz
        if text_ids is None:
            text_ids = torch.full((b, 1), BOS, dtype=torch.long, device=image.device)
        if text_ids.shape[1] > self.text_pos.shape[1]:
            raise ValueError(f"text of {text_ids.shape[1]} tokens exceeds max_text_len {self.text_pos.shape[1]}")
        parts.append(self.text_embed(text_ids) + self.text_pos[:, : text_ids.shape[1]])
        experts += [UND] * text_ids.shape[1]
        x = torch.cat(parts, dim=1)
        nv, nt = vis.shape[1], text_ids.shape[1]
        seg = {"query": slice(0, 1), "vision": slice(1, 1 + nv), "latent": slice(1 + nv, 1 + nv + nz),
               "answer": slice(1 + nv + nz, 1 + nv + nz + nt)}
        mask = self._detection_mask(b, seg, x.shape[1], image.device, drop_vision, drop_latent)
        return x, torch.tensor(experts, device=image.device), mask, seg

    @staticmethod
    def _detection_mask(b: int, seg: dict[str, slice], n: int, device: torch.device,
                        drop_vision: torch.Tensor | None, drop_latent: torch.Tensor | None) -> torch.Tensor:
        ctx = seg["answer"].start
        nt = n - ctx
        mask = torch.zeros(b, n, n, dtype=torch.bool, device=device)
        mask[:, :ctx, :ctx] = True  # query, vision, clean latents: one bidirectional block (SMSA)
        mask[:, ctx:, :ctx] = True  # answer reads the whole image context
        mask[:, ctx:, ctx:] = torch.tril(torch.ones(nt, nt, dtype=torch.bool, device=device))
        for name, drop in (("vision", drop_vision), ("latent", drop_latent)):
            s = seg[name]
            if drop is None or s.stop == s.start:
                continue
            # condition dropout: nobody else reads the dropped view (it still attends to itself)
            rows = torch.ones(n, dtype=torch.bool, device=device)
            rows[s] = False
            cut = drop.view(b, 1, 1) & rows.view(1, n, 1)
            mask[:, :, s] = mask[:, :, s] & ~cut
        return mask

    def detection_outputs(self, image: torch.Tensor, text_ids: torch.Tensor | None = None,
                          drop_vision: torch.Tensor | None = None, drop_latent: torch.Tensor | None = None,
                          keep_layers: tuple[int, ...] = (), want_attention: bool = False) -> dict[str, Any]:
        x, experts, mask, seg = self.detection_sequence(image, text_ids, drop_vision, drop_latent)
        out = self.transformer(x, experts, mask, keep_layers, want_attention)
        hidden = out["hidden"]
        answer = hidden[:, seg["answer"]]
        logits2 = self.det_head(answer[:, 0])
        result = {"logits2": logits2, "answer_hidden": answer, "segments": seg, "layers": out["layers"],
                  "attention": out["attention"]}
        if self.tokenizer is not None:
            result["text_logits"] = answer @ self.text_embed.weight.t()  # tied LM head
        return result

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.detection_outputs(batch["image"])
        logit = out["logits2"][:, 1] - out["logits2"][:, 0]
        return {"logit": logit, "prob": torch.sigmoid(logit), "features": out["answer_hidden"][:, 0]}

    def loss(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Used by the generic trainer (detection only); GDUF/DIGA live in gendet.training.unified.
        ce = F.binary_cross_entropy_with_logits(out["logit"], batch["label"].to(out["logit"].dtype))
        return {"loss": ce, "ce_cls": ce}

    # ---- explanations ----------------------------------------------------------------------
    def encode_texts(self, texts: list[str | None], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, T) padded with <pad>, has_text (B,) bool) for a batch of explanations."""
        if self.tokenizer is None:
            raise ValueError("this UniGenDet has no text head (trained without explanations)")
        max_len = int(self.config["max_text_len"])
        seqs = [self.tokenizer.encode(t, max_len) if t else [BOS, EOS] for t in texts]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        has = torch.tensor([bool(t) for t in texts])
        return ids.to(device), has.to(device)

    @torch.no_grad()
    def generate_explanation(self, batch: dict[str, Any], max_len: int | None = None) -> list[str] | None:
        """Greedy decoding of the explanation after <bos>; None without a text head."""
        if self.tokenizer is None:
            return None
        image = batch["image"]
        max_len = min(max_len or int(self.config["max_text_len"]), int(self.config["max_text_len"]))
        ids = torch.full((image.shape[0], 1), BOS, dtype=torch.long, device=image.device)
        done = torch.zeros(image.shape[0], dtype=torch.bool, device=image.device)
        for _ in range(max_len - 1):
            nxt = self.detection_outputs(image, ids)["text_logits"][:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return [self.tokenizer.decode(row.tolist()) for row in ids]

    @torch.no_grad()
    def relevance(self, batch: dict[str, Any]) -> torch.Tensor:
        """Attention rollout from the answer position to the image tokens, on the vision grid (B, g, g).

        Rollout (Abnar & Zuidema 2020): head-averaged attention plus identity, multiplied through the
        layers; the clean-latent tokens' share is resized onto the same grid and added (SMSA)."""
        out = self.detection_outputs(batch["image"], want_attention=True)
        seg = out["segments"]
        roll = None
        for a in out["attention"]:
            a = a.mean(1)
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
            a = a / a.sum(-1, keepdim=True)
            roll = a if roll is None else a @ roll
        row = roll[:, seg["answer"].start]
        g = self.vision_grid
        vis = row[:, seg["vision"]].reshape(-1, 1, g, g)
        if seg["latent"].stop > seg["latent"].start:
            lg = self.latent_grid
            lat = row[:, seg["latent"]].reshape(-1, 1, lg, lg)
            vis = vis + F.interpolate(lat, size=(g, g), mode="bilinear", align_corners=False)
        return vis[:, 0]

    # ---- generation ------------------------------------------------------------------------
    def generation_outputs(self, z_t: torch.Tensor, t: torch.Tensor, classes: torch.Tensor,
                           keep_layers: tuple[int, ...] = ()) -> dict[str, Any]:
        """Velocity prediction for noisy normalised latents z_t at times t, given class ids (null = num_classes)."""
        cls = self.class_embed(classes)[:, None, :]
        lat = self._latent_tokens(z_t, t)
        x = torch.cat([cls, lat], dim=1)
        n = x.shape[1]
        experts = torch.tensor([UND] + [GEN] * lat.shape[1], device=z_t.device)
        mask = torch.ones(1, n, n, dtype=torch.bool, device=z_t.device)
        mask[:, 0, 1:] = False  # the condition does not read the noise
        out = self.transformer(x, experts, mask, keep_layers)
        v = self._unpatchify(self.flow_out(out["hidden"][:, 1:]))
        return {"velocity": v, "layers": {k: s[:, 1:] for k, s in out["layers"].items()}}

    def flow_loss(self, image: torch.Tensor, classes: torch.Tensor,
                  keep_layers: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[str, Any]]:
        """Rectified-flow MSE on real images (SPEC: x_t = (1-t) x0 + t eps, v = eps - x0, t = sigmoid(N(0,1)))."""
        x0 = self.encode_latents(image, sample=True)
        eps = torch.randn_like(x0)
        t = sample_t(x0.shape[0]).to(x0.device)
        out = self.generation_outputs(interpolate(x0, eps, t), t, classes, keep_layers)
        return F.mse_loss(out["velocity"].float(), velocity_target(x0, eps).float()), out

    def null_class(self) -> int:
        return int(self.config["num_classes"])

    @torch.no_grad()
    def sample_from_noise(self, noise: torch.Tensor, steps: int, cfg_scale: float, classes: torch.Tensor | None = None,
                          sampler: str = "heun") -> torch.Tensor:
        """Integrate the flow from latent noise to an image in [-1, 1] (classifier-free guidance when != 1)."""
        device = self.latent_mean.device
        noise = noise.to(device)
        cl = (torch.zeros(noise.shape[0], dtype=torch.long) if classes is None else classes).to(device)

        def velocity(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t = t.to(z.device)
            if cfg_scale == 1.0:
                return self.generation_outputs(z, t, cl)["velocity"]
            both = self.generation_outputs(torch.cat([z, z]), torch.cat([t, t]),
                                           torch.cat([cl, torch.full_like(cl, self.null_class())]))
            v_c, v_u = both["velocity"].chunk(2)
            return v_u + cfg_scale * (v_c - v_u)

        return self.decode_latents(sample_ode(velocity, noise, steps, sampler)).clamp(-1, 1)

    @torch.no_grad()
    def generate(self, n: int, seed: int, classes: torch.Tensor | None = None, steps: int | None = None,
                 cfg_scale: float | None = None, batch_size: int = 64, sampler: str = "heun") -> torch.Tensor:
        """n uint8 images (n, 3, H, W), deterministic for a seed; image i does not depend on batch_size."""
        c = self.config
        steps = int(steps or c["sample_steps"])
        scale = float(c["cfg_scale"] if cfg_scale is None else cfg_scale)
        if classes is None:
            classes = torch.zeros(n, dtype=torch.long)
        if classes.shape != (n,) or (n and (int(classes.min()) < 0 or int(classes.max()) >= c["num_classes"])):
            raise ValueError(f"classes must be {n} ids in [0, {c['num_classes']})")
        lat = self.latent_grid * int(c["latent_patch"])
        noise = torch.randn(n, int(c["z_ch"]), lat, lat, generator=torch.Generator().manual_seed(int(seed)))
        was = self.training
        self.eval()
        out = []
        try:
            for i in range(0, n, batch_size):
                x = self.sample_from_noise(noise[i:i + batch_size], steps, scale, classes[i:i + batch_size], sampler)
                out.append(x.add(1).mul(127.5).round().to(torch.uint8).cpu())
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, 3, c["image_size"], c["image_size"], dtype=torch.uint8)

    # ---- parameter groups ----------------------------------------------------------------------
    def generation_parameters(self) -> list[nn.Parameter]:
        """The generation expert and the generation-only parts (latent in/out, time, DIGA projector)."""
        params = self.transformer.expert_parameters(GEN)
        for m in (self.latent_in, self.time_mlp, self.flow_out, self.align_mlp):
            params += list(m.parameters())
        return params + [self.latent_pos]

    def generation_only_parameters(self) -> list[nn.Parameter]:
        """Parameters a detection forward never touches (class condition, velocity output, DIGA projector)."""
        return [*self.class_embed.parameters(), *self.flow_out.parameters(), *self.align_mlp.parameters()]

    def frozen_copy(self) -> UniGenDet:
        twin = copy.deepcopy(self).eval()
        twin.requires_grad_(False)
        return twin
