"""Data: decoding, preprocessing, datasets and on-disk layout readers."""

from gendet.data.dataset import ImageDataset, collate_items, sample_seed
from gendet.data.decode import DecodeError, DecodeLimits, decode_image
from gendet.data.layouts import detect_layout, list_subsets, read_samples, select_split, split_holdout
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.sample import Sample

__all__ = [
    "DecodeError",
    "DecodeLimits",
    "ImageDataset",
    "ImageTransform",
    "Preprocess",
    "Sample",
    "collate_items",
    "decode_image",
    "detect_layout",
    "list_subsets",
    "read_samples",
    "sample_seed",
    "select_split",
    "split_holdout",
]
