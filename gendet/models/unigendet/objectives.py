"""UniGenDet's training objectives (SPEC), and the stage objectives gendet.training.loop's step loop
minimises (`GDUFObjective`, `DIGAObjective`; the batch plan is gendet.training.unified's).

GDUF: one loss over a mixed batch of detection and generation data,
    L = w_text * CE(explanation tokens) + w_cls * CE(head, label) + w_flow * MSE_flow,
with modality dropout (SMSA) and condition dropout as configured in the model.
DIGA: L = w_flow * MSE_flow + w_align * (1 - mean cos(MLP(h_gen^k), resize(h_det^k))), h_det^k the layer-k
states of the real image's vision tokens in the frozen GDUF detector (the teacher).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gendet.models.unigendet.model import UniGenDet
from gendet.models.unigendet.tokenizer import PAD


@dataclass(frozen=True)
class LossWeights:
    w_text: float = 1.0
    w_cls: float = 0.2
    w_flow: float = 1.0
    w_align: float = 0.5


def condition_classes(model: UniGenDet, n: int, p_drop: float, device: torch.device) -> torch.Tensor:
    """Class 0 ("a real photo") for each generation row, replaced by the null class with probability p_drop."""
    classes = torch.zeros(n, dtype=torch.long, device=device)
    dropped = torch.rand(n, device=device) < p_drop
    return classes.masked_fill(dropped, model.null_class())


def gduf_loss(model: UniGenDet, image: torch.Tensor, labels: torch.Tensor, texts: list[str | None],
              gen_image: torch.Tensor, weights: LossWeights, use_text: bool) -> dict[str, torch.Tensor]:
    """The GDUF loss of detection rows (`image`, `labels`, `texts`) and generation rows (`gen_image`), with its
    parts ("ce_cls", "ce_text", "mse_flow") beside the total ("loss")."""
    device = gen_image.device if gen_image.shape[0] else image.device
    drop = model.config["cond_dropout"]
    parts: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=device)
    if image.shape[0]:
        b = image.shape[0]
        text_ids, has = (model.encode_texts(texts, device) if use_text else (None, None))
        drop_v = drop_l = None
        if model.config["smsa"]:  # modality dropout needs the other view present
            u = torch.rand(b, device=device)
            drop_v = u < drop["vision"]
            drop_l = (u >= drop["vision"]) & (u < drop["vision"] + drop["latent"])
        out = model.detection_outputs(image, text_ids, drop_v, drop_l)
        parts["ce_cls"] = F.cross_entropy(out["logits2"].float(), labels)
        total = total + weights.w_cls * parts["ce_cls"]
        if text_ids is not None:
            tgt = text_ids[:, 1:].masked_fill(~has[:, None], PAD)
            if bool((tgt != PAD).any()):
                parts["ce_text"] = F.cross_entropy(out["text_logits"][:, :-1].float().transpose(1, 2), tgt,
                                                   ignore_index=PAD)
                total = total + weights.w_text * parts["ce_text"]
    if gen_image.shape[0]:
        classes = condition_classes(model, gen_image.shape[0], drop["text"], device)
        parts["mse_flow"], _ = model.flow_loss(gen_image, classes)
        total = total + weights.w_flow * parts["mse_flow"]
    parts["loss"] = total
    return parts


def diga_loss(model: UniGenDet, teacher: UniGenDet, gen_image: torch.Tensor,
              weights: LossWeights) -> dict[str, torch.Tensor]:
    """The DIGA loss of generation rows; w_align = 0 is the "w/o DIGA" control (the flow loss alone)."""
    k = model.diga_k
    classes = condition_classes(model, gen_image.shape[0], model.config["cond_dropout"]["text"], gen_image.device)
    mse, out = model.flow_loss(gen_image, classes, keep_layers=(k,))
    if weights.w_align == 0:
        return {"loss": weights.w_flow * mse, "mse_flow": mse}
    with torch.no_grad():
        det = teacher.detection_outputs(gen_image, keep_layers=(k,))
        vis = det["layers"][k][:, det["segments"]["vision"]]
        g = teacher.vision_grid
        target = vis.transpose(1, 2).reshape(vis.shape[0], -1, g, g)
        lg = model.latent_grid
        target = F.interpolate(target, size=(lg, lg), mode="bilinear", align_corners=False)
        target = F.normalize(target.flatten(2).transpose(1, 2).float(), dim=-1)
    pred = model.align_mlp(out["layers"][k])
    if pred.shape != target.shape:
        raise RuntimeError(f"DIGA shape mismatch: generation states {tuple(pred.shape)} vs detector "
                           f"targets {tuple(target.shape)}")
    cos = F.cosine_similarity(pred.float(), target, dim=-1).mean()
    align = 1.0 - cos
    return {"loss": weights.w_flow * mse + weights.w_align * align, "mse_flow": mse, "align": align,
            "cos": cos.detach()}


class GDUFObjective:
    """GDUF as a step objective: a planned batch is `det_size` detection items then generation items; items
    that failed to decode are missing from either part (`batch["position"]`: each good item's planned place)."""

    def __init__(self, model: UniGenDet, weights: LossWeights, texts: list[str | None], has_text: bool,
                 det_size: int, gen_size: int) -> None:
        self.model, self.weights, self.texts, self.has_text = model, weights, texts, has_text
        self.det_size, self.gen_size = det_size, gen_size

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        n_det = sum(pos < self.det_size for pos in batch["position"])
        det_img, gen_img = batch["image"][:n_det], batch["image"][n_det:]
        if self.gen_size and gen_img.shape[0] == 0:
            raise RuntimeError("no generation image of this batch could be decoded")
        texts = [self.texts[i] for i in batch["index"].tolist()[:n_det]]
        return gduf_loss(self.model, det_img, batch["label"][:n_det], texts, gen_img, self.weights, self.has_text)


class DIGAObjective:
    """DIGA as a step objective: every item of a batch is generation data (real images)."""

    def __init__(self, model: UniGenDet, teacher: UniGenDet, weights: LossWeights) -> None:
        self.model, self.teacher, self.weights = model, teacher, weights

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if batch["image"].shape[0] == 0:
            raise RuntimeError("no generation image of this batch could be decoded")
        return diga_loss(self.model, self.teacher, batch["image"], self.weights)
