"""The pixel path never sees metadata: a file and its metadata-stripped copy decode and transform identically."""

from __future__ import annotations

import numpy as np

from gendet.data.decode import decode_image
from gendet.data.preprocess import ImageTransform, Preprocess
from provenance.helpers import camera_jpeg, chunk, comfy_prompt, png_bytes, text, with_chunks, xmp_packet


def test_metadata_does_not_change_the_model_input() -> None:
    plain_png = png_bytes()
    tagged_png = with_chunks(plain_png, text("prompt", comfy_prompt()), text("Software", "NovelAI"),
                             chunk(b"caBX", b"\x00" * 32))
    plain_jpg = camera_jpeg(make="")
    tagged_jpg = camera_jpeg(make="", software="Midjourney", xmp=xmp_packet())
    transform = ImageTransform(Preprocess(size=64), train=False)
    for plain, tagged in ((plain_png, tagged_png), (plain_jpg, tagged_jpg)):
        a, b = decode_image(plain), decode_image(tagged)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        rng = np.random.default_rng(0)
        assert np.array_equal(transform(a, rng).numpy(), transform(b, rng).numpy())
