"""CNNSpot / CNNDetection (Wang et al., CVPR 2020): ResNet-50 trained with blur + JPEG augmentation.

The recipe of their "Blur+JPEG (0.5)" model: with probability 0.5 Gaussian blur with
sigma ~ U[0, 3], with probability 0.5 JPEG at quality ~ U{30..100} (Pillow here), then
a random horizontal flip. They augment before the crop; gendet's ImageTransform
augments after it, which differs only at the crop border.

They crop 224 px at native resolution (their ProGAN images are 256 px). gendet's
default is `resize=True` all the same: on data whose real images are JPEG and fakes
PNG (GenImage), a native-resolution crop keeps the real photos' 8x8 JPEG grid, which
format alignment then cannot hide; set `resize=False` where both classes share a
container. `gendet import-weights --format cnndetection` loads their released `.pth`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gendet.models.resnet import ResNetDetector


class CNNSpot(ResNetDetector):
    name = "cnnspot"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "cnnspot (ResNet-18 width, from scratch)", "config": {"arch": "resnet18", "image_size": 64}},
        "standard": {"label": "cnnspot"}}
    description = (
        "CNNDetection (Wang et al. 2020): ResNet-50 + blur(sigma~U[0,3], p=.5) & JPEG(q~U[30,100], p=.5) "
        "train augmentation; ImageNet init only from a local file"
    )
    default_config: ClassVar[dict[str, Any]] = {
        **ResNetDetector.default_config,
        "augment": {
            "flip_prob": 0.5,
            "blur_prob": 0.5,
            "blur_sigma": [0.0, 3.0],
            "jpeg_prob": 0.5,
            "jpeg_quality": [30, 100],
        },
    }
