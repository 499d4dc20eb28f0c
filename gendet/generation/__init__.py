"""gendet's own small image generators (GAN, VAE, pixel flow, latent flow, AE reconstruction).

Each is trained here on real photo crops and used to build the local GenImage-style
benchmark. See `registry.GENERATORS` for the families.
"""

from gendet.generation.base import Generator
from gendet.generation.registry import (
    GENERATORS,
    create_generator,
    list_generators,
    load_generator,
    save_generator,
    shipped_generator_path,
)

__all__ = [
    "GENERATORS", "Generator", "create_generator", "list_generators", "load_generator", "save_generator",
    "shipped_generator_path",
]
