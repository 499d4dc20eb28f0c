"""The one image path shared by both classes: geometry -> format alignment -> (degradation) -> tensor.

Real and generated images go through exactly the same steps, so neither size
nor container can separate the classes (GenImage's real-JPEG / fake-PNG flaw).
Evaluation degradations (owned by the protocol) and train-time augmentations
(owned by each detector) plug in as callables `f(img, rng) -> img`; this module
never chooses them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from gendet.data.decode import DecodeLimits, decode_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALIGN_MODES = ("jpeg", "png", "none")
# Measured in tests/data/test_alignment.py: re-encoding at q95 leaves the real photos'
# earlier JPEG compression visible to a format classifier (AUC 0.68); q85 hides it (0.46).
DEFAULT_JPEG_QUALITY = 85

ImageOp = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Preprocess:
    """How a decoded image becomes a model input. Recorded in every config.json.

    size: square side length fed to the model.
    resize: resize the shorter side to `size` before cropping; False = crop only
        (reflect-pad images smaller than `size`), which keeps pixel-level traces intact.
    align: "jpeg" re-encodes every image (real and fake alike) as JPEG at
        `jpeg_quality` after the geometry step; "png" is a lossless round trip
        (same decoder for both classes); "none" skips alignment (not recommended).
        With resize=False the original JPEG grid survives cropping, so alignment is weaker.
    crops: evaluation crops per image, a square number: 1 = the centre crop; k*k = a k x k grid of
        crops spread evenly over the image (after the optional resize), scored as the mean logit
        (Detector.__call__). A large image is then judged by all of it, not by its centre.
    train_crop_scale: (lo, hi), training only: the random crop covers a square of side
        `size / u`, u ~ U[lo, hi] (clipped to the image), resized to `size`; (1, 1) = plain crops.
        Varied scales teach a detector that works on native pixels to survive mild down-sampling.
    """

    size: int = 224
    resize: bool = True
    align: str = "jpeg"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crops: int = 1
    train_crop_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        # configs come from JSON files people edit: wrong types get a message, not a TypeError deep inside
        for name, kind in (("size", int), ("resize", bool), ("jpeg_quality", int), ("crops", int)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"preprocess {name} must be {kind.__name__}, got {value!r}")
        for name in ("mean", "std", "train_crop_scale"):
            value = getattr(self, name)
            n = 2 if name == "train_crop_scale" else 3
            if (not isinstance(value, tuple | list) or len(value) != n
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
                raise ValueError(f"preprocess {name} must be {n} numbers, got {value!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"preprocess jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {ALIGN_MODES}, got {self.align!r}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        k = math.isqrt(max(1, int(self.crops)))
        if int(self.crops) < 1 or k * k != int(self.crops):
            raise ValueError(f"crops must be a square number (1, 4, 9, ...), got {self.crops}")
        lo, hi = (float(v) for v in self.train_crop_scale)
        if not 0.1 <= lo <= hi <= 1.0:
            raise ValueError(f"train_crop_scale must be (lo, hi) with 0.1 <= lo <= hi <= 1, "
                             f"got {self.train_crop_scale}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["train_crop_scale"] = list(self.train_crop_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """From a config's "preprocess" object; ValueError names what is wrong with it."""
        if not isinstance(d, dict):
            raise ValueError(f"preprocess must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"preprocess has unknown keys {unknown}")
        d = dict(d)
        for k in ("mean", "std", "train_crop_scale"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass(frozen=True)
class GeometryPlan:
    """Where the geometry step resized, padded and cropped one image, so a pixel mask can follow it exactly.

    resize_to: (w, h) after resizing, None when not resized; pad: (top, bottom, left, right) with
    `pad_mode`; box: the crop (left, top, right, bottom) in the padded image.
    """

    resize_to: tuple[int, int] | None
    pad: tuple[int, int, int, int]
    pad_mode: str
    box: tuple[int, int, int, int]


def decode_for_model(source: str | bytes, pp: Preprocess, limits: DecodeLimits | None = None,
                     formats: tuple[str, ...] | None = None) -> Image.Image:
    """`decode_image` with the geometry limits of this preprocessing (the pixels its resize or padding
    would make are checked before decoding)."""
    return decode_image(source, limits, short_side=pp.size if pp.resize else None,
                        pad_to=None if pp.resize else pp.size, formats=formats)


def resized_size(image_size: tuple[int, int], pp: Preprocess) -> tuple[int, int] | None:
    """(w, h) after the optional shorter-side resize to `pp.size`; None when nothing is resized."""
    w, h = image_size
    scale = pp.size / min(w, h)
    if not pp.resize or scale == 1.0:
        return None
    return max(pp.size, round(w * scale)), max(pp.size, round(h * scale))


def plan_geometry(image_size: tuple[int, int], pp: Preprocess, rng: np.random.Generator | None) -> GeometryPlan:
    """The resize/pad/crop for an image of `image_size` (w, h); random crop when `rng` is given, else centre."""
    s = pp.size
    resize_to = resized_size(image_size, pp)
    w, h = resize_to or image_size
    pad, mode = (0, 0, 0, 0), "reflect"
    if w < s or h < s:
        ph, pw = max(0, s - h), max(0, s - w)
        mode = "reflect" if (h > 1 and w > 1 and ph < h and pw < w) else "edge"
        pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
        h, w = h + ph, w + pw
    if rng is None:
        left, top = (w - s) // 2, (h - s) // 2
    else:
        left, top = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
    return GeometryPlan(resize_to, pad, mode, (left, top, left + s, top + s))


def plan_crop_grid(image_size: tuple[int, int], pp: Preprocess) -> list[GeometryPlan]:
    """`pp.crops` evaluation crops: a k x k grid spread evenly over the (resized, padded) image."""
    centre = plan_geometry(image_size, pp, None)
    k = math.isqrt(int(pp.crops))
    if k == 1:
        return [centre]
    s = pp.size
    w, h = centre.resize_to or image_size
    top_pad, bottom_pad, left_pad, right_pad = centre.pad
    w, h = w + left_pad + right_pad, h + top_pad + bottom_pad
    xs = [round(i * (w - s) / (k - 1)) for i in range(k)]
    ys = [round(j * (h - s) / (k - 1)) for j in range(k)]
    return [GeometryPlan(centre.resize_to, centre.pad, centre.pad_mode, (x, y, x + s, y + s)) for y in ys for x in xs]


def plan_scaled_crop(image_size: tuple[int, int], pp: Preprocess, rng: np.random.Generator) -> GeometryPlan | None:
    """Training: a random square of side size/u (u ~ train_crop_scale) to be resized to `size`; None when
    u == 1 or the image is too small for a larger square (then the plain random crop applies)."""
    lo, hi = pp.train_crop_scale
    if hi >= 1.0 and lo >= 1.0:
        return None
    u = float(rng.uniform(lo, hi))
    resize_to = resized_size(image_size, pp)
    w, h = resize_to or image_size
    side = min(round(pp.size / u), w, h)
    if side <= pp.size:
        return None
    left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return GeometryPlan(resize_to, (0, 0, 0, 0), "reflect", (left, top, left + side, top + side))


def apply_plan(img: Image.Image, plan: GeometryPlan, mask: bool = False) -> Image.Image:
    """Apply a GeometryPlan; `mask=True` resizes with NEAREST so label values stay labels."""
    if plan.resize_to is not None:
        if mask:
            img = img.resize(plan.resize_to, Image.Resampling.NEAREST)
        else:
            img = img.resize(plan.resize_to, Image.Resampling.BICUBIC, reducing_gap=3.0)
    if any(plan.pad):
        arr = np.asarray(img)
        top, bottom, left, right = plan.pad
        widths = ((top, bottom), (left, right)) + (((0, 0),) if arr.ndim == 3 else ())
        img = Image.fromarray(np.pad(arr, widths, mode=plan.pad_mode))
    return img.crop(plan.box)


def apply_geometry(img: Image.Image, pp: Preprocess, rng: np.random.Generator | None) -> Image.Image:
    """Resize (optional) and crop to `pp.size`; random crop when `rng` is given (of a varied scale when
    `pp.train_crop_scale` says so), else centre crop."""
    if rng is not None:
        scaled = plan_scaled_crop(img.size, pp, rng)
        if scaled is not None:
            out = apply_plan(img, scaled)
            return out.resize((pp.size, pp.size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return apply_plan(img, plan_geometry(img.size, pp, rng))


def encode_roundtrip(img: Image.Image, fmt: str, quality: int = 95) -> Image.Image:
    """Encode to `fmt` in memory and decode again (JPEG is lossy, PNG lossless)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality), subsampling=2 if quality < 90 else 0)
    elif fmt == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def align_format(img: Image.Image, pp: Preprocess) -> Image.Image:
    if pp.align == "none":
        return img
    return encode_roundtrip(img, pp.align, pp.jpeg_quality)


def to_pixels(img: Image.Image) -> torch.Tensor:
    """The image as uint8 (3, H, W): the model input before normalisation, a quarter of its bytes. Decoder
    processes send this; the model's process normalises whole batches (`normalize`)."""
    # np.array, not asarray: a view of PIL's buffer is read-only, which torch warns about
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def normalize(pixels: torch.Tensor, pp: Preprocess, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> the float32 model input (x / 255 - mean) / std, on the pixels' device; written
    into `out` (same shape) when given. Elementwise IEEE operations, so the result is bit-identical whether one
    image or a batch is normalised, here or in a decoder process (tested)."""
    x = out.copy_(pixels) if out is not None else pixels.to(torch.float32)
    mean = torch.tensor(pp.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return x.div_(255.0).sub_(mean).div_(std)


def to_tensor(img: Image.Image, pp: Preprocess) -> torch.Tensor:
    return normalize(to_pixels(img), pp)


class ImageTransform:
    """Decoded RGB image -> normalised tensor, the same for both classes.

    Order: geometry -> format alignment -> degradation (protocol, eval only) ->
    back to `size` if the degradation changed it -> augmentation (detector, train
    only) -> tensor. All randomness comes from the `rng` passed in, so a sample's
    result depends only on its seed (resume and worker count do not change it).
    """

    def __init__(
        self,
        pp: Preprocess,
        train: bool = False,
        augment: ImageOp | None = None,
        degradation: ImageOp | None = None,
    ) -> None:
        self.pp, self.train, self.augment, self.degradation = pp, train, augment, degradation

    def prepare(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Everything except the final tensor conversion (useful for thumbnails)."""
        img = apply_geometry(img, self.pp, rng if self.train else None)
        return self._after_geometry(img, rng)

    def prepare_with_mask(self, img: Image.Image, mask: Image.Image,
                          rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
        """`prepare` for an image and its pixel mask: the mask takes exactly the image's geometry (same
        resize, pad and crop; NEAREST so labels stay labels) and none of the photometric steps. A detector
        trained on masks must therefore use photometric augmentations only (a flip would not reach the mask)."""
        if mask.size != img.size:
            mask = mask.resize(img.size, Image.Resampling.NEAREST)
        plan = plan_geometry(img.size, self.pp, rng if self.train else None)
        return self._after_geometry(apply_plan(img, plan), rng), apply_plan(mask, plan, mask=True)

    def _after_geometry(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        img = align_format(img, self.pp)
        if self.degradation is not None:
            img = self.degradation(img, rng)
            if img.size != (self.pp.size, self.pp.size):
                img = img.resize((self.pp.size, self.pp.size), Image.Resampling.BILINEAR)
        if self.train and self.augment is not None:
            img = self.augment(img, rng)
            if img.size != (self.pp.size, self.pp.size):
                img = img.resize((self.pp.size, self.pp.size), Image.Resampling.BILINEAR)
        return img

    def prepare_crops(self, img: Image.Image, rng: np.random.Generator) -> list[Image.Image]:
        """Evaluation with `pp.crops` > 1: every grid crop through the same steps as `prepare`."""
        return [self._after_geometry(apply_plan(img, plan), rng) for plan in plan_crop_grid(img.size, self.pp)]

    def pixels(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        """What __call__ returns before normalisation: uint8 (C, H, W), or (crops, C, H, W)."""
        if not self.train and self.pp.crops > 1:
            return torch.stack([to_pixels(c) for c in self.prepare_crops(img, rng)])
        return to_pixels(self.prepare(img, rng))

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        """(C, H, W); (crops, C, H, W) when evaluating with several crops."""
        return normalize(self.pixels(img, rng), self.pp)
