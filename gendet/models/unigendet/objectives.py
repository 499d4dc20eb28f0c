"""UniGenDet's training objectives (SPEC; the step loop that minimises them is gendet.training.unified).

GDUF: one loss over a mixed batch of detection and generation data,
    L = w_text * CE(explanation tokens) + w_cls * CE(head, label) + w_flow * MSE_flow,
with modality dropout (SMSA) and condition dropout as configured in the model.
DIGA: L = w_flow * MSE_flow + w_align * (1 - mean cos(MLP(h_gen^k), resize(h_det^k))), h_det^k the layer-k
states of the real image's vision tokens in the frozen GDUF detector (the teacher).
"""

from __future__ import annotations

from dataclasses import dataclass

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
