"""Targets are told apart by type (not attribute names); unknown MACs/params are null, not 0."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nas
from nas.results import ArchScore
from nas.search import make_target
from search_spaces import Dim, SearchSpace, UserError, get_space


class TablesAttributeLatency:
    """A user's latency model that happens to have an attribute called ``tables``."""

    name = "my-model"
    tables = {"ofa": "not a device profile"}

    def predict(self, X):
        return 1.0 + X[:, 0]


def test_a_latency_model_with_a_tables_attribute_is_a_latency_model():
    space = get_space("proxyless")
    target = make_target(TablesAttributeLatency(), space, "30ms")
    assert target.device == "my-model"
    X = space.sample_encoded(np.random.default_rng(0), 4)
    np.testing.assert_allclose(target.predictor.predict(X), 1.0 + X[:, 0])


def test_a_target_that_is_neither_device_nor_model_is_a_user_error():
    with pytest.raises(UserError, match="device name, a DeviceProfile or an object with predict"):
        make_target(42, get_space("proxyless"), "30ms")


class Unbuildable(SearchSpace):
    """A custom space with dims but neither block costs nor build."""

    name = "unbuildable"

    @property
    def dims(self):
        return [Dim("a", (1, 2, 3)), Dim("b", (1, 2))]

    def to_values(self, arch):
        return [arch.get("a"), arch.get("b")]

    def from_values(self, values):
        return {"a": int(values[0]), "b": int(values[1])}

    def build(self, arch):
        raise NotImplementedError("no torch model for this toy space")


class ALatency:
    def predict(self, X):
        return 1.0 + X[:, 0]


class BAccuracy:
    def predict(self, X):
        return 0.5 + 0.1 * X[:, 1]


def test_unknown_macs_and_params_are_null_not_zero(tmp_path):
    result = nas.search(space=Unbuildable(), target=ALatency(), latency_ms=5, accuracy=BAccuracy(),
                        budget=20, strategy="random", plot=False, out=tmp_path / "run")
    assert result.best.macs is None and result.best.params is None
    data = json.loads((tmp_path / "run" / "result.json").read_text())
    assert data["best"]["macs"] is None and data["best"]["params"] is None
    assert all(s["macs"] is None for s in data["top_k"])


def test_arch_score_stores_nan_as_null_and_reads_it_back():
    s = ArchScore(arch={}, top1=0.5, latency_ms={}, macs=float("nan"), params=3.0, score=0.5)
    again = ArchScore.model_validate_json(s.model_dump_json())
    assert again.macs is None and again.params == 3.0
