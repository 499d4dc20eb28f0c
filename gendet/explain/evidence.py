"""Per-image evidence for a detector's verdict: score, heat map, occlusion, cues and a text built from them.

`explain_image` is the library entry point (the CLI and the server call it). Every
sentence of `Evidence.text` is chosen by the numbers measured on that image: which
regions change the score when occluded, and which cues are unusual for a real photo
and in which direction. The verdict label only fills in the first sentence's word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gendet.data.preprocess import ImageTransform, Preprocess, apply_plan, plan_geometry, to_tensor
from gendet.explain.cues import CUES, Box, RealReference, cell_boxes, find_autoencoder, measure_cues, real_reference
from gendet.explain.relevance import relevance_maps
from gendet.models.base import Detector
from gendet.models.hooks import Explains

OCCLUSION_MODES = ("blur", "mean")
UNUSUAL_Z = 1.5  # |z| from which a cue is called unusual for a real photo
MIN_DELTA = 0.02  # occlusion effects smaller than this (in probability) are not called a driver
CUE_WORDS = {
    "hf_share": "high-frequency energy",
    "spectral_peak": "spectral peaks",
    "noise_residual": "fine-grain noise",
    "recon_error": "reconstruction error",
}


# -- occlusion -----------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), replicate-padded (works for any image size)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def occluded_inputs(x: torch.Tensor, grid: int, mode: str = "blur") -> torch.Tensor:
    """(1, C, H, W) model input -> (grid*grid, C, H, W), cell i (row-major) replaced by its occluded version.

    "blur": a strong Gaussian blur of the image (sigma = a quarter of the cell), which removes the
    cell's fine detail and traces but keeps its colours, so the image stays plausible;
    "mean": the image's per-channel mean.
    """
    if mode not in OCCLUSION_MODES:
        raise ValueError(f"occlusion must be one of {OCCLUSION_MODES}, got {mode!r}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if mode == "blur":
        fill = gaussian_blur(x, sigma=max(1.0, min(h, w) / grid / 4.0))
    else:
        fill = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    boxes = cell_boxes(h, w, grid)
    out = x.repeat(len(boxes), 1, 1, 1)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        out[i, :, y0:y1, x0:x1] = fill[0, :, y0:y1, x0:x1]
    return out


def predict_probs(detector: Detector, x: torch.Tensor, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(logits, probs) of the detector on a stack of model inputs, in chunks."""
    logits, probs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = detector({"image": x[i:i + batch_size]})
            logits.append(out["logit"].reshape(-1).float().cpu())
            probs.append(out["prob"].reshape(-1).float().cpu())
    return torch.cat(logits).numpy().astype(np.float64), torch.cat(probs).numpy().astype(np.float64)


# -- evidence ------------------------------------------------------------------
def region_name(row: int, col: int, grid: int) -> str:
    """'top-left', 'centre', 'bottom' ... (1-based row/col appended, since several cells can share a name)."""
    def place(i: int, first: str, last: str) -> str:
        return first if i == 0 else last if i == grid - 1 else ""

    vertical, horizontal = place(row, "top", "bottom"), place(col, "left", "right")
    words = "-".join(w for w in (vertical, horizontal) if w) or "centre"
    if grid == 1:
        words = "whole-image"
    return f"{words} (row {row + 1}, col {col + 1})"


def _cue_entry(value: float, stat: Any) -> dict[str, float | None]:
    return {"value": float(value), "z": None if stat is None else float(stat.z(float(value)))}


@dataclass
class Region:
    """One grid cell of the model input."""

    index: int
    row: int
    col: int
    name: str
    box: Box  # x0, y0, x1, y1 in model-input pixels (end exclusive)
    relevance_share: float  # fraction of the heat map's mass inside the cell
    occlusion_delta: float  # prob(original) - prob(cell occluded); > 0: the cell pushed toward "generated"
    prob_occluded: float
    logit_delta: float  # the same in logits: still readable when the probability is saturated near 0 or 1
    cues: dict[str, dict[str, float | None]]  # cue -> {"value", "z"} vs real-photo cells

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "row": self.row, "col": self.col, "name": self.name, "box": list(self.box),
            "relevance_share": self.relevance_share, "occlusion_delta": self.occlusion_delta,
            "prob_occluded": self.prob_occluded, "logit_delta": self.logit_delta, "cues": self.cues,
        }


@dataclass
class Evidence:
    """Everything measured for one image; `to_dict()` is JSON-ready."""

    prob: float
    logit: float
    threshold: float
    threshold_source: str
    label: str  # "fake" iff prob >= threshold
    model: str
    checkpoint: str | None
    input_size: tuple[int, int]  # (height, width) of the model input
    relevance_source: str  # "attention" or "gradient"
    grid: int
    occlusion: str
    regions: list[Region]  # all cells, row-major
    top: list[int]  # indices into regions, strongest occlusion effect first
    cues: dict[str, dict[str, float | None]]  # whole-image cue -> {"value", "z"}
    autoencoder: str | None  # where the recon_error autoencoder came from (None: cue skipped)
    notes: list[str]
    reference: RealReference | None
    text: str = ""
    model_text: str | None = None
    image: np.ndarray = field(default=None, repr=False)  # (H, W, 3) uint8 model-input image
    relevance: np.ndarray = field(default=None, repr=False)  # (H, W) in [0, 1]

    @property
    def top_regions(self) -> list[Region]:
        return [self.regions[i] for i in self.top]

    def to_dict(self) -> dict[str, Any]:
        g = self.grid
        shares = [[self.regions[r * g + c].relevance_share for c in range(g)] for r in range(g)]
        deltas = [[self.regions[r * g + c].occlusion_delta for c in range(g)] for r in range(g)]
        return {
            "prob": self.prob, "logit": self.logit, "threshold": self.threshold,
            "threshold_source": self.threshold_source, "label": self.label,
            "model": self.model, "checkpoint": self.checkpoint, "input_size": list(self.input_size),
            "relevance_source": self.relevance_source, "grid": g, "occlusion": self.occlusion,
            "top_regions": [dict(r.to_dict(), rank=k + 1) for k, r in enumerate(self.top_regions)],
            "relevance_grid": shares, "occlusion_grid": deltas,
            "cues": self.cues, "autoencoder": self.autoencoder,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "regions": [r.to_dict() for r in self.regions],
            "notes": list(self.notes), "text": self.text, "model_text": self.model_text,
        }


def _model_text(detector: Detector, batch: dict[str, Any]) -> str | None:
    if not isinstance(detector, Explains):
        return None
    with torch.no_grad():
        texts = detector.generate_explanation(batch)
    return None if not texts else str(texts[0])


def centre_region(image: Image.Image, pp: Preprocess) -> Image.Image:
    """The pixels of `image` that its centre crop reads, at the model's scale (resized and padded as the
    geometry step does): what `explain_image(..., score=...)` needs, a fraction of a large image."""
    return apply_plan(image, plan_geometry(image.size, pp, None))


def explain_image(
    detector: Detector,
    image: Image.Image,
    pp: Preprocess,
    threshold: float,
    *,
    threshold_source: str = "given",
    grid: int = 4,
    top: int = 3,
    occlusion: str = "blur",
    autoencoder: nn.Module | None | Literal["auto"] = "auto",
    reference: RealReference | None = None,
    model_name: str | None = None,
    checkpoint: str | None = None,
    batch_size: int = 32,
    score: float | None = None,
) -> Evidence:
    """Explain one decoded RGB image: verdict, relevance map, occlusion regions, cues and text.

    The image goes through `ImageTransform(pp, train=False)` exactly as in `gendet detect`.
    `autoencoder`: "auto" = the detector's own, else the shipped latent_flow one; None skips
    the recon_error cue. `reference`: real-photo statistics (default: computed once per process).
    `score`: the verdict's P(generated) when the caller already has it (the server scores every upload
    in a batch first): then `image` may be just the centre crop's region (`centre_region`), which is
    all the map and regions read, and the crop grid is not scored again.
    """
    if grid < 1 or top < 1:
        raise ValueError(f"grid and top must be >= 1, got grid={grid}, top={top}")
    detector.eval()
    device = next(detector.parameters(), torch.empty(0)).device
    prepared = ImageTransform(pp, train=False).prepare(image, np.random.default_rng(0))
    rgb = np.asarray(prepared, dtype=np.uint8)
    x = to_tensor(prepared, pp)[None].to(device)
    h, w = rgb.shape[:2]
    if grid > min(h, w):
        raise ValueError(f"grid {grid} is larger than the model input ({w}x{h} px)")
    notes: list[str] = []

    # 1-3: verdict and occlusion in one batch (row 0 = original), then the heat map.
    logits, probs = predict_probs(detector, torch.cat([x, occluded_inputs(x, grid, occlusion)]), batch_size)
    prob, deltas = float(probs[0]), probs[0] - probs[1:]
    if pp.crops > 1:  # the verdict is gendet detect's (mean over the crop grid); the map explains the centre crop
        if score is None:
            full = ImageTransform(pp, train=False)(image, np.random.default_rng(0))[None].to(device)
            with torch.no_grad():
                prob_all = float(detector({"image": full})["prob"][0])
        else:
            prob_all = float(score)
        notes.append(f"score {prob_all:.3f} = mean logit over {pp.crops} crops, as gendet detect scores it; the "
                     f"heat map and regions explain the centre crop (its score {prob:.3f})")
        prob = prob_all
    rel, rel_source = relevance_maps(detector, x)
    rel_map = rel[0]
    boxes = cell_boxes(h, w, grid)
    mass = float(rel_map.sum())
    shares = [float(rel_map[y0:y1, x0:x1].sum()) / mass if mass > 0 else 1.0 / len(boxes)
              for x0, y0, x1, y1 in boxes]

    # 4: cues of the image and of each cell, against real photos.
    if autoencoder == "auto":
        ae, ae_source = find_autoencoder(detector)
        if ae is None:
            notes.append(f"recon_error skipped: {ae_source}")
            ae_source = None
    else:
        ae, ae_source = autoencoder, ("given" if autoencoder is not None else None)
        if ae is None:
            notes.append("recon_error skipped: no autoencoder was given")
    if reference is None:
        try:
            reference = real_reference(pp, grid, ae)
        except (OSError, ValueError) as e:  # missing/unreadable shipped photos: values without z-scores
            notes.append(f"no real-photo reference ({type(e).__name__}: {e}); cues have no z-scores")
    whole, cells = measure_cues(rgb[None], grid, ae)
    ref_image = reference.image if reference else {}
    ref_region = reference.region if reference else {}
    image_cues = {k: _cue_entry(v[0], ref_image.get(k)) for k, v in whole.items()}
    regions = [
        Region(
            index=i, row=i // grid, col=i % grid, name=region_name(i // grid, i % grid, grid), box=boxes[i],
            relevance_share=shares[i], occlusion_delta=float(deltas[i]), prob_occluded=float(probs[1 + i]),
            logit_delta=float(logits[0] - logits[1 + i]),
            cues={k: _cue_entry(v[0, i], ref_region.get(k)) for k, v in cells.items()},
        )
        for i in range(len(boxes))
    ]
    # Strongest effect either way first; the logit change breaks ties when the probability is saturated.
    order = sorted(range(len(regions)), key=lambda i: (-round(abs(regions[i].occlusion_delta), 6),
                                                       -abs(regions[i].logit_delta), -regions[i].relevance_share))

    ev = Evidence(
        prob=prob, logit=float(logits[0]), threshold=float(threshold), threshold_source=threshold_source,
        label="fake" if prob >= threshold else "real",
        model=model_name or str(getattr(detector, "variant", detector.name) or type(detector).__name__),
        checkpoint=checkpoint, input_size=(h, w), relevance_source=rel_source, grid=grid, occlusion=occlusion,
        regions=regions, top=order[:min(top, len(regions))], cues=image_cues, autoencoder=ae_source,
        notes=notes, reference=reference, image=rgb, relevance=rel_map,
    )
    ev.text = explanation_text(ev)
    ev.model_text = _model_text(detector, {"image": x})
    return ev


# -- text ----------------------------------------------------------------------
def format_prob(v: float) -> str:
    """A probability with enough digits to be read: 0.91, but 0.0113, 4.5e-05 or 0.9987 near the ends."""
    if 0.05 <= v <= 0.95:
        return f"{v:.2f}"
    return f"{v:.3g}" if v < 0.05 else f"{v:.4f}"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def cue_phrase(name: str, value: float, z: float, typical: float | None = None) -> str:
    """A noun phrase for an unusual cue, worded by its direction ("...has <phrase>")."""
    a, up = abs(z), z > 0
    if name == "hf_share":
        return f"{a:.1f} sd {'more' if up else 'less'} high-frequency spectral energy than real photos"
    if name == "spectral_peak":
        if up:
            ref = f" vs {typical:.0f}x typical" if typical is not None else ""
            return f"a periodic spectral peak ({value:.0f}x the median high-frequency magnitude{ref}, +{a:.1f} sd)"
        return f"an unusually flat high-frequency spectrum ({a:.1f} sd fewer peaks than real photos)"
    if name == "noise_residual":
        return f"{a:.1f} sd {'more' if up else 'less'} fine-grain noise than real photos"
    if name == "recon_error":
        why = "" if up else " (typical of images that came out of a decoder)"
        return f"a reconstruction error {a:.1f} sd {'higher' if up else 'lower'} than real photos{why}"
    raise KeyError(name)


def _unusual(cues: dict[str, dict[str, float | None]], typical: dict[str, float]) -> list[str]:
    found = [(k, c) for k, c in cues.items() if c.get("z") is not None and abs(c["z"]) >= UNUSUAL_Z]
    found.sort(key=lambda kc: -abs(kc[1]["z"]))
    return [cue_phrase(k, c["value"], c["z"], typical.get(k)) for k, c in found]


def _mean_cues(regions: list[Region]) -> dict[str, dict[str, float | None]]:
    """Average value and z-score of each cue over a few regions."""
    out: dict[str, dict[str, float | None]] = {}
    for k in CUES:
        vals = [r.cues[k] for r in regions if k in r.cues]
        if not vals:
            continue
        zs = [v["z"] for v in vals if v["z"] is not None]
        out[k] = {"value": float(np.mean([v["value"] for v in vals])), "z": float(np.mean(zs)) if zs else None}
    return out


def _region_sentence(ev: Evidence) -> tuple[str, list[Region]]:
    """The sentence about which regions move the score, and the regions it talks about."""
    strong = [r for r in ev.top_regions if abs(r.occlusion_delta) >= MIN_DELTA]
    if not strong:
        biggest = max(abs(r.occlusion_delta) for r in ev.regions)
        first = ev.top_regions[0]
        return (f"No single region drives the score: occluding any one of the {len(ev.regions)} regions changes it "
                f"by at most {format_prob(biggest)} (the largest logit change, {first.logit_delta:+.2f}, is from the "
                f"{first.name} region)."), ev.top_regions
    ups = [r for r in strong if r.occlusion_delta > 0]
    downs = [r for r in strong if r.occlusion_delta < 0]
    parts = []
    if ups:
        share = sum(r.relevance_share for r in ups)
        parts.append(
            f"the {_join([r.name for r in ups])} region{'s' if len(ups) > 1 else ''} raise{'' if len(ups) > 1 else 's'}"
            f" the score most (occluding {'them' if len(ups) > 1 else 'it'} lowers it by "
            f"{_join([f'{r.occlusion_delta:.2f}' for r in ups])}; {share:.0%} of the {ev.relevance_source} heat map)"
        )
    if downs:
        share = sum(r.relevance_share for r in downs)
        parts.append(
            f"the {_join([r.name for r in downs])} region{'s' if len(downs) > 1 else ''} "
            f"pull{'' if len(downs) > 1 else 's'} it down (occluding {'them' if len(downs) > 1 else 'it'} raises it by "
            f"{_join([f'{-r.occlusion_delta:.2f}' for r in downs])}; {share:.0%} of the heat map)"
        )
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + ".", strong


def explanation_text(ev: Evidence) -> str:
    """2-4 sentences built from the measured numbers only (see module docstring)."""
    verdict = "generated" if ev.label == "fake" else "real"
    sentences = [f"Scored {format_prob(ev.prob)} (threshold {format_prob(ev.threshold)}): {verdict}."]
    region_sentence, talked_about = _region_sentence(ev)
    sentences.append(region_sentence)
    ref = ev.reference
    if ref is None:
        sentences.append("Cues were measured but not compared with real photos (no reference available).")
        return " ".join(sentences)
    typical_region = {k: s.typical() for k, s in ref.region.items()}
    typical_image = {k: s.typical() for k, s in ref.image.items()}
    region_unusual = _unusual(_mean_cues(talked_about), typical_region)
    who = "That region has" if len(talked_about) == 1 else "Those regions have"
    if region_unusual:
        sentences.append(f"{who} {_join(region_unusual)}.")
    image_unusual = _unusual(ev.cues, typical_image)
    measured = _join([CUE_WORDS[k] for k in ev.cues])
    if image_unusual:
        sentences.append(f"The whole image has {_join(image_unusual)}.")
    elif region_unusual:
        sentences.append(f"Over the whole image, {measured} are all within {UNUSUAL_Z} sd of real photos.")
    else:
        sentences.append(f"No measured cue ({measured}) is unusual for a real photo, in those regions or over the "
                         f"whole image (all within {UNUSUAL_Z} sd).")
    if "recon_error" not in ev.cues:
        sentences[-1] = sentences[-1][:-1] + "; reconstruction error was not measured (no autoencoder)."
    return " ".join(sentences)
