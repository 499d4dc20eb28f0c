"""Which optional parts of the contract each registered detector has (gendet.models.hooks), by isinstance."""

from __future__ import annotations

import pytest

from gendet.models.hooks import Explains, HeadFitting, OwnFeatureKey, RegionMasks, Relevance
from gendet.models.registry import DETECTORS, get_detector_class

HOOKS = (HeadFitting, OwnFeatureKey, Relevance, Explains, RegionMasks)
EXPECTED = {
    "probe": {HeadFitting},
    "unigendet": {Relevance, Explains},
    "unigendet_lite": {HeadFitting, OwnFeatureKey},
    "gamma": {Relevance},
    "gamma_lite": {HeadFitting, OwnFeatureKey, RegionMasks},
    "hrr_lite": {HeadFitting, OwnFeatureKey},
    "dire_lite": {HeadFitting, OwnFeatureKey},
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_hooks_of_each_detector(name: str) -> None:
    try:
        cls = get_detector_class(name)
    except ImportError:
        pytest.skip(f"{name}: optional extra not installed")
    have = {h for h in HOOKS if issubclass(cls, h)}
    assert have == EXPECTED.get(name, set()), name


def test_relevance_defaults_come_from_the_contract() -> None:
    gamma = get_detector_class("gamma")
    assert (gamma.relevance_source, gamma.relevance_is_probability) == ("predicted mask", True)
    assert (get_detector_class("unigendet").relevance_source, get_detector_class("tiny_cnn").relevance_source) == (
        "attention", "attention")
