"""Custom spaces: a user's file loaded by ``--space-module`` (and the API), searched and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import nas
from search_spaces import Dim, SearchSpace, UserError, get_space
from search_spaces.registry import load_space_module

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "custom_space.py"
SPEC = f"{EXAMPLE}:TinyChain"


def test_example_loads_once_under_its_registered_name():
    space = load_space_module(SPEC)
    assert space.name == "tiny-chain" and get_space("tiny-chain") is space
    assert load_space_module(SPEC) is space and get_space(SPEC) is space
    assert space.module_spec == SPEC
    assert len(space.dims) == 11 and space.size() == 4 ** 5 * 5 ** 6


def test_search_the_example_from_the_cli_and_resume(nas_cli, tmp_path):
    out = tmp_path / "run"
    code, text, err = nas_cli("search", "--space-module", SPEC, "--target", "pixel", "--latency", "20ms",
                              "--budget", "600", "--out", out, "--no-plot", "--quiet")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["space"] == "tiny-chain" and result["best"]["latency_ms"]["pixel1"] <= 20.0
    assert json.loads((out / "config.json").read_text())["space_module"] == SPEC
    # resuming imports the space file again, which runs its code: only when the user names it again
    code, _, err = nas_cli("search", "--resume", out, "--no-plot", "--quiet")
    assert code == 2 and f"--space-module {SPEC}" in err and err.count("\n") == 1, err
    code, _, err = nas_cli("search", "--resume", out, "--space-module", SPEC, "--no-plot", "--quiet")
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["best"] == result["best"]


@pytest.mark.parametrize("spec, message", [
    ("nowhere/missing_space.py:X", "does not exist"),
    (f"{EXAMPLE}:NoSuchClass", "defines no 'NoSuchClass'"),
    (f"{EXAMPLE}:OPTIONS", "not a SearchSpace"),
    ("custom_space:TinyChain", "expected PATH.py:ClassName"),
])
def test_bad_space_modules_are_one_line_errors(nas_cli, spec, message):
    code, _, err = nas_cli("search", "--space-module", spec, "--latency", "20ms")
    assert code == 2 and message in err and err.count("\n") == 1, err


class Pair(SearchSpace):
    """A two-choice toy space with only the minimal contract: dims, to_values, from_values, build."""

    name = "pair"

    @property
    def dims(self):
        return [Dim("width", (8, 16, 32)), Dim("depth", (1, 2, 3))]

    def to_values(self, arch):
        return [arch.get("width"), arch.get("depth")]

    def from_values(self, values):
        return {"width": int(values[0]), "depth": int(values[1])}

    def build(self, arch):
        layers = [nn.Conv2d(3, arch["width"], 3, padding=1)]
        layers += [nn.Conv2d(arch["width"], arch["width"], 3, padding=1) for _ in range(arch["depth"] - 1)]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(arch["width"], 10))

    def input_shape(self, arch):
        return (3, 32, 32)


class WidthLatency:
    name = "toy-device"

    def predict(self, X):
        return 1.0 + X[:, 0] + X[:, 1]


class DepthAccuracy:
    def predict(self, X):
        return 0.5 + 0.1 * X[:, 0] + 0.05 * X[:, 1]


def test_minimal_contract_is_searchable_through_the_api():
    space = Pair()
    with pytest.raises(UserError, match="width: 12 is not allowed; allowed: 8, 16, 32"):
        space.validate({"width": 12, "depth": 1})
    result = nas.search(space=space, target=WidthLatency(), latency_ms=3, accuracy=DepthAccuracy(),
                        budget=50, strategy="random", plot=False)
    assert result.best.arch == {"width": 32, "depth": 1} and result.best.macs > 0


def test_api_accepts_a_space_module_spec():
    result = nas.search(space=SPEC, target="pixel", latency_ms=20, budget=300, plot=False)
    assert result.space == "tiny-chain" and result.best.latency_ms["pixel1"] <= 20
    assert np.isfinite(result.best.top1)
