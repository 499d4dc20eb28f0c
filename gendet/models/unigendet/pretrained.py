"""`unigendet_lite`: UniGenDet with a pretrained understanding encoder, trained on cached frozen features.

The paper's model reads the image through a pretrained vision encoder (SigLIP in BAGEL) and through
its generator's autoencoder. Here:
- understanding path: frozen ImageNet EfficientNet-Lite2 (the probe's backbone and taps) at native
  resolution; its features pooled over a `grid` x `grid` partition of the crop -> vision tokens;
- generation path: the crop resized to 64 px, encoded by a frozen KL autoencoder trained on the
  genuine set's real *training* photos (gendet.bench.genuine_autoencoder) -> clean latent
  tokens at t = 0;
- one mixture-of-transformers (understanding / generation experts, gendet.models.unigendet.mot).
Both frozen outputs are what `backbone_features` returns, so the benchmark caches them and every
cell, seed and ablation variant trains only the transformer (seconds to a minute on 2 cores).

Mechanisms (SPEC):
- SMSA (`smsa`): [Q, vision, clean latents] in one bidirectional attention; off = [Q, vision] only;
  condition dropout of each view (0.3) when both are present.
- GDUF (`gduf`): the detection fit is one loss over mixed batches, 0.2 CE(head) + 1.0 MSE_flow, with
  5 label-balanced detection rows per generation row (the real rows' latents, class-conditioned,
  null class 0.1); off = detection loss alone (the generator is then trained on its own, `fit_generator`).
- DIGA (`fit_diga`): trains only the generation side with MSE_flow + 0.5 (1 - cos(MLP(h_gen^k),
  resize(h_det^k))) where h_det^k are layer-k states of the real image's vision tokens in a frozen
  copy of the detector.
Labels: gendet's 1 = generated; logit = l[1] - l[0] of the 2-way head. No text head: the genuine
set has no explanations. Not trained with EMA (the fits are a few hundred steps).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.generation.autoencoder import Autoencoder
from gendet.generation.blocks import timestep_embedding
from gendet.generation.flow import interpolate, sample_ode, sample_t, velocity_target
from gendet.models.backbones import attach_backbone, get_spec
from gendet.models.cached_head import CachedHeadDetector, adamw_loop, balanced_batches, state_digest
from gendet.models.probe import TRANSFER_AUGMENT, TRANSFER_INPUT
from gendet.models.unigendet.config import COND_DROPOUT, diga_layer
from gendet.models.unigendet.model import alignment_mlp, detection_head, patchify, unpatchify
from gendet.models.unigendet.mot import GEN, UND, MoTTransformer

LATENT_SIZE = 64  # the generation resolution (the autoencoder's training size)


class UniGenDetLite(CachedHeadDetector):
    name = "unigendet_lite"
    onnx_unsupported = 'region tokens pool to a grid (adaptive_avg_pool2d) over an input size the tracer cannot see'
    description = ("UniGenDet on a frozen pretrained encoder: EfficientNet-Lite2 region tokens + clean latents of an "
                   "autoencoder trained on real photos, one mixture-of-transformers; SMSA, GDUF, DIGA")
    FROZEN = ("backbone", "autoencoder")
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 260, **TRANSFER_INPUT, "backbone": "lite2", "taps": [1, 2, 3, 4, 5], "pretrained": True,
        "backbone_sha256": None, "augment": TRANSFER_AUGMENT,
        # 4 x 4 latent patches (16 tokens), depth 2, MLP ratio 2: a 300-step fit ~15 s on 2 CPU cores; 2 x 2
        # patches (64 tokens) cost 2.4x that
        "grid": 3, "hidden": 128, "depth": 2, "heads": 4, "mlp_ratio": 2.0, "latent_patch": 4,
        "ae_channels": [24, 48, 96], "z_ch": 4, "ae_blocks": 1, "autoencoder_sha256": None,
        "ae_steps": 800,  # training steps of the frozen autoencoder (gendet.bench.genuine_autoencoder)
        "smsa": True, "gduf": True, "steps": 300, "det_batch": 32, "det_gen_ratio": 5.0, "lr": 1e-3,
        "weight_decay": 0.05, "w_cls": 0.2, "w_flow": 1.0, "w_align": 0.5, "diga_layer": 0,
        "diga_steps": 300, "cond_dropout": dict(COND_DROPOUT), "cfg_scale": 1.5, "sample_steps": 12,
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "crops": 1, "taps": [1], "pretrained": False,
                                              "grid": 2, "hidden": 32, "depth": 2, "heads": 2,
                                              "ae_channels": [8, 16, 16], "ae_steps": 2, "steps": 4, "diga_steps": 2}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        h = int(c["hidden"])
        self.hidden = h
        spec = get_spec(str(c["backbone"]))
        if "mean" not in config:
            c["mean"], c["std"] = list(spec.mean), list(spec.std)
        if tuple(c["mean"]) != (0.5, 0.5, 0.5) or tuple(c["std"]) != (0.5, 0.5, 0.5):
            raise ValueError("unigendet_lite takes inputs in [-1, 1] (mean = std = 0.5): the autoencoder's range")
        self.backbone = attach_backbone(c).eval()
        self.autoencoder = Autoencoder(tuple(c["ae_channels"]), int(c["z_ch"]), int(c["ae_blocks"]), kl=True)
        self.autoencoder.requires_grad_(False)
        self.register_buffer("latent_mean", torch.zeros(1, int(c["z_ch"]), 1, 1))
        self.register_buffer("latent_std", torch.ones(1, int(c["z_ch"]), 1, 1))
        g, p = int(c["grid"]), int(c["latent_patch"])
        lat = LATENT_SIZE // self.autoencoder.factor
        if lat % p:
            raise ValueError(f"latent grid {lat} is not divisible by latent_patch {p}")
        self.n_vision, self.vision_dim = g * g, self.backbone.feature_dim
        self.latent_side, self.latent_grid = lat, lat // p
        self.latent_numel = int(c["z_ch"]) * lat * lat
        self.register_buffer("feat_mean", torch.zeros(self.vision_dim))
        self.register_buffer("feat_std", torch.ones(self.vision_dim))
        self.vision_in = nn.Sequential(nn.Linear(self.vision_dim, h), nn.LayerNorm(h))
        self.vision_pos = nn.Parameter(torch.randn(1, self.n_vision, h) * 0.02)
        self.latent_in = nn.Linear(int(c["z_ch"]) * p * p, h)
        self.latent_pos = nn.Parameter(torch.randn(1, self.latent_grid ** 2, h) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(h, 4 * h), nn.SiLU(), nn.Linear(4 * h, h))
        self.query = nn.Parameter(torch.randn(1, 1, h) * 0.02)
        self.class_embed = nn.Embedding(2, h)  # 0 = "a real photo", 1 = null (condition dropout, CFG)
        self.transformer = MoTTransformer(h, int(c["depth"]), int(c["heads"]), float(c["mlp_ratio"]))
        self.det_head = detection_head(h)
        self.flow_out = nn.Linear(h, int(c["z_ch"]) * p * p)
        nn.init.zeros_(self.flow_out.weight)
        nn.init.zeros_(self.flow_out.bias)
        self.align_mlp = alignment_mlp(h)
        self.diga_k = diga_layer(int(c["depth"]), int(c["diga_layer"]))
        self.fit_info: dict[str, Any] = {}

    # ---- frozen part ---------------------------------------------------------------------------
    def adopt_autoencoder(self, ae: Autoencoder, latent_mean: torch.Tensor, latent_std: torch.Tensor) -> None:
        """Use a trained autoencoder (e.g. fit_genuine_autoencoder's) as the frozen latent path."""
        self.autoencoder.load_state_dict(ae.state_dict(), strict=True)
        self.latent_mean.copy_(latent_mean.reshape_as(self.latent_mean))
        self.latent_std.copy_(latent_std.reshape_as(self.latent_std))
        self.config["autoencoder_sha256"] = state_digest(
            {**self.autoencoder.state_dict(), "latent_mean": self.latent_mean, "latent_std": self.latent_std})

    def frozen_identity(self) -> dict[str, Any]:
        c = self.config
        return {k: c.get(k) for k in ("backbone", "backbone_sha256", "taps", "pretrained", "grid", "ae_channels",
                                      "z_ch", "ae_blocks", "autoencoder_sha256")}

    def train_augment(self) -> Any:
        return make_augment(**self.config["augment"])

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> (B, grid^2 * D + z * 16 * 16): region tokens, then normalised clean latents."""
        tokens = self.backbone.tokens(x, int(self.config["grid"])).flatten(1)
        small = F.interpolate(x, size=(LATENT_SIZE, LATENT_SIZE), mode="bilinear", antialias=True,
                              align_corners=False)
        mean, _ = self.autoencoder.encode(small.float())
        z = (mean - self.latent_mean) / self.latent_std
        return torch.cat([tokens.float(), z.flatten(1)], dim=1)

    def split(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nv = self.n_vision * self.vision_dim
        if feats.shape[-1] != nv + self.latent_numel:
            raise ValueError(f"expected features of width {nv + self.latent_numel}, got {feats.shape[-1]}")
        vis = feats[:, :nv].reshape(-1, self.n_vision, self.vision_dim)
        z = feats[:, nv:].reshape(-1, int(self.config["z_ch"]), self.latent_side, self.latent_side)
        return vis, z

    # ---- tokens ----------------------------------------------------------------------------------
    def _patchify(self, z: torch.Tensor) -> torch.Tensor:
        return patchify(z, int(self.config["latent_patch"]))

    def _unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        return unpatchify(tokens, int(self.config["latent_patch"]), int(self.config["z_ch"]), self.latent_grid)

    def _latent_tokens(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.hidden).to(z.dtype))
        return self.latent_in(self._patchify(z)) + self.latent_pos + temb[:, None, :]

    # ---- detection -------------------------------------------------------------------------------
    def detection_outputs(self, vis: torch.Tensor, z: torch.Tensor, drop: bool = False,
                          keep_layers: tuple[int, ...] = ()) -> dict[str, Any]:
        """SMSA: [Q, vision, clean latents] attend to each other; `drop` applies condition dropout (training)."""
        b = vis.shape[0]
        v = self.vision_in((vis - self.feat_mean) / self.feat_std) + self.vision_pos
        parts, experts = [self.query.expand(b, -1, -1), v], [UND] * (1 + self.n_vision)
        smsa = bool(self.config["smsa"])
        if smsa:
            lat = self._latent_tokens(z, torch.zeros(b, device=z.device))
            parts.append(lat)
            experts += [GEN] * lat.shape[1]
        x = torch.cat(parts, dim=1)
        n = x.shape[1]
        mask = torch.ones(b, n, n, dtype=torch.bool, device=x.device)
        if drop and smsa:  # nobody else reads a dropped view (it still attends to itself)
            p = self.config["cond_dropout"]
            u = torch.rand(b, device=x.device)
            vs, ls = slice(1, 1 + self.n_vision), slice(1 + self.n_vision, n)
            for s, dropped in ((vs, u < p["vision"]), (ls, (u >= p["vision"]) & (u < p["vision"] + p["latent"]))):
                others = torch.ones(n, dtype=torch.bool, device=x.device)
                others[s] = False
                cut = dropped.view(b, 1, 1) & others.view(1, n, 1)
                mask[:, :, s] &= ~cut
        out = self.transformer(x, torch.tensor(experts, device=x.device), mask, keep_layers)
        logits2 = self.det_head(out["hidden"][:, 0])
        return {"logit": logits2[:, 1] - logits2[:, 0], "logits2": logits2, "layers": out["layers"]}

    def head_logits_tensor(self, feats: torch.Tensor) -> torch.Tensor:
        vis, z = self.split(feats)
        return self.detection_outputs(vis, z)["logit"]

    # ---- generation ------------------------------------------------------------------------------
    def generation_outputs(self, z_t: torch.Tensor, t: torch.Tensor, classes: torch.Tensor,
                           keep_layers: tuple[int, ...] = ()) -> dict[str, Any]:
        lat = self._latent_tokens(z_t, t)
        x = torch.cat([self.class_embed(classes)[:, None, :], lat], dim=1)
        n = x.shape[1]
        mask = torch.ones(1, n, n, dtype=torch.bool, device=x.device)
        mask[:, 0, 1:] = False  # the condition does not read the noise
        experts = torch.tensor([UND] + [GEN] * lat.shape[1], device=x.device)
        out = self.transformer(x, experts, mask, keep_layers)
        return {"velocity": self._unpatchify(self.flow_out(out["hidden"][:, 1:])),
                "layers": {k: s[:, 1:] for k, s in out["layers"].items()}}

    def flow_loss(self, z0: torch.Tensor, keep_layers: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[str, Any]]:
        """Rectified-flow MSE on clean latents (x_t = (1-t) x0 + t eps, v = eps - x0, t = sigmoid(N(0, 1)))."""
        eps = torch.randn_like(z0)
        t = sample_t(z0.shape[0])
        classes = (torch.rand(z0.shape[0]) < float(self.config["cond_dropout"]["text"])).long()
        out = self.generation_outputs(interpolate(z0, eps, t), t, classes, keep_layers)
        return F.mse_loss(out["velocity"], velocity_target(z0, eps)), out

    @torch.no_grad()
    def generate(self, n: int, seed: int, batch_size: int = 64) -> torch.Tensor:
        """n uint8 images (n, 3, 64, 64), deterministic for a seed (classifier-free guidance)."""
        c = self.config
        noise = torch.randn(n, int(c["z_ch"]), self.latent_side, self.latent_side,
                            generator=torch.Generator().manual_seed(int(seed)))
        scale = float(c["cfg_scale"])
        was = self.training
        self.eval()
        out = []
        try:
            for i in range(0, n, batch_size):
                z = noise[i:i + batch_size]
                m = z.shape[0]

                def velocity(zt: torch.Tensor, t: torch.Tensor, m: int = m) -> torch.Tensor:
                    both = self.generation_outputs(torch.cat([zt, zt]), torch.cat([t, t]),
                                                   torch.cat([torch.zeros(m, dtype=torch.long),
                                                              torch.ones(m, dtype=torch.long)]))["velocity"]
                    v_c, v_u = both.chunk(2)
                    return v_u + scale * (v_c - v_u)

                lat = sample_ode(velocity, z, int(c["sample_steps"]), "heun")
                img = self.autoencoder.decode(lat * self.latent_std + self.latent_mean).clamp(-1, 1)
                out.append(img.add(1).mul(127.5).round().to(torch.uint8))
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, 3, LATENT_SIZE, LATENT_SIZE, dtype=torch.uint8)

    # ---- fitting on cached features ----------------------------------------------------------------
    def _set_standardisation(self, vis: torch.Tensor) -> None:
        flat = vis.reshape(-1, self.vision_dim)
        self.feat_mean.copy_(flat.mean(0))
        self.feat_std.copy_(flat.std(0) + 1e-6)

    def generation_only_parameters(self) -> list[nn.Parameter]:
        """Parameters a detection forward never touches (class condition, velocity output, DIGA projector)."""
        return [p for m in (self.class_embed, self.flow_out, self.align_mlp) for p in m.parameters()]

    def detection_parameters(self) -> list[nn.Parameter]:
        """What a detection fit trains: everything but the generation-only layers and the frozen parts."""
        gen_only = {id(p) for p in self.generation_only_parameters()}
        return [p for p in self.head_parameters() if id(p) not in gen_only]

    def generation_parameters(self) -> list[nn.Parameter]:
        """The generation expert and the generation-only layers (latent in/out, time, class, DIGA projector)."""
        params = self.transformer.expert_parameters(GEN)
        for m in (self.latent_in, self.time_mlp, self.flow_out, self.class_embed, self.align_mlp):
            params += list(m.parameters())
        return [*params, self.latent_pos]

    def fit_head(self, raw: np.ndarray, labels: np.ndarray, seed: int = 0) -> None:
        """Stage 1 on cached features (N, F): GDUF (detection + flow on the real rows' latents) or detection alone."""
        c = self.config
        x = torch.from_numpy(np.asarray(raw, dtype=np.float32))
        y = np.asarray(labels).astype(int)
        vis, z = self.split(x)
        self._set_standardisation(vis)
        torch.manual_seed(seed)
        real = np.flatnonzero(y == 0)
        gduf = bool(c["gduf"])
        gen_batch = self.generation_batch()
        rng = np.random.default_rng(seed + 1)
        batches = list(balanced_batches(y, int(c["det_batch"]), int(c["steps"]), seed))
        y_t = torch.from_numpy(y)
        self.train()

        def step_loss(step: int) -> torch.Tensor:
            idx = torch.from_numpy(batches[step])
            ce = F.cross_entropy(self.detection_outputs(vis[idx], z[idx], drop=True)["logits2"], y_t[idx])
            if not gduf:
                return ce
            g = torch.from_numpy(rng.choice(real, gen_batch))
            mse, _ = self.flow_loss(z[g])
            return float(c["w_cls"]) * ce + float(c["w_flow"]) * mse

        params = self.head_parameters() if gduf else self.detection_parameters()
        curve = adamw_loop(params, int(c["steps"]), float(c["lr"]), float(c["weight_decay"]), step_loss)
        self.eval()
        self.fit_info = {"stage": "gduf" if gduf else "detection", "loss_curve": curve}

    def generation_batch(self) -> int:
        """Generation rows per GDUF step: one per `det_gen_ratio` detection rows."""
        return max(1, round(int(self.config["det_batch"]) / float(self.config["det_gen_ratio"])))

    def fit_generator(self, real_latents: np.ndarray | torch.Tensor, seed: int = 0, steps: int | None = None,
                      teacher: UniGenDetLite | None = None, real_vision: torch.Tensor | None = None,
                      batch: int | None = None) -> list[float]:
        """Train only the generation side on real latents (`batch` rows a step, default det_batch): the flow
        loss alone, or (with a frozen `teacher` and the same rows' vision tokens) DIGA's flow + alignment loss."""
        c = self.config
        z = torch.as_tensor(real_latents, dtype=torch.float32)
        steps = int(steps or c["diga_steps"])
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed + 2)
        batch = int(batch or c["det_batch"])
        k = self.diga_k
        if teacher is not None and (real_vision is None or len(real_vision) != len(z)):
            raise ValueError("DIGA needs the real rows' vision tokens, one per latent")
        self.train()

        def step_loss(step: int) -> torch.Tensor:
            idx = torch.from_numpy(rng.integers(0, len(z), batch))
            mse, out = self.flow_loss(z[idx], keep_layers=(k,) if teacher is not None else ())
            if teacher is None:
                return float(c["w_flow"]) * mse
            with torch.no_grad():
                det = teacher.detection_outputs(real_vision[idx], z[idx], keep_layers=(k,))
                vis = det["layers"][k][:, 1:1 + teacher.n_vision]  # the vision tokens' layer-k states
                g = int(teacher.config["grid"])
                tgt = vis.transpose(1, 2).reshape(vis.shape[0], -1, g, g)
                tgt = F.interpolate(tgt, size=(self.latent_grid, self.latent_grid), mode="bilinear",
                                    align_corners=False)
                tgt = F.normalize(tgt.flatten(2).transpose(1, 2), dim=-1)
            pred = self.align_mlp(out["layers"][k])
            if pred.shape != tgt.shape:
                raise RuntimeError(f"DIGA shape mismatch: generation states {tuple(pred.shape)} vs detector "
                                   f"targets {tuple(tgt.shape)}")
            cos = F.cosine_similarity(pred, tgt, dim=-1).mean()
            return float(c["w_flow"]) * mse + float(c["w_align"]) * (1.0 - cos)

        params = self.generation_parameters()
        for p in params:
            p.requires_grad_(True)
        curve = adamw_loop(params, steps, float(c["lr"]), float(c["weight_decay"]), step_loss)
        self.eval()
        return curve

    def frozen_copy(self) -> UniGenDetLite:
        twin = copy.deepcopy(self).eval()
        twin.requires_grad_(False)
        return twin
