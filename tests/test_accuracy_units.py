"""User estimators: a percent is caught with a one-line fix; results repeat what the estimator says it predicts."""

from __future__ import annotations

import numpy as np
import pytest

import nas
from search_spaces import get_space
from search_spaces.errors import UserError


class PercentTop1:
    """A user's estimator that forgot to divide by 100."""

    def predict(self, X):
        return 60.0 + 0.5 * np.asarray(X).sum(axis=1)


class CifarAccuracy:
    name = "my-cifar-proxy"
    metric = "CIFAR-10 validation accuracy (fraction) after 5 epochs"

    def predict(self, X):
        return 0.5 + 0.001 * np.asarray(X).sum(axis=1)


class Undeclared:
    def predict(self, X):
        return 0.5 + 0.001 * np.asarray(X).sum(axis=1)


def test_an_estimator_returning_percent_is_a_one_line_error_naming_the_fix():
    with pytest.raises(UserError) as e:
        nas.search("ofa", "pixel", 60, accuracy=PercentTop1(), budget=200, seed=0)
    msg = str(e.value)
    assert "\n" not in msg and "above 1" in msg and "divide by 100" in msg and "fraction" in msg


def test_a_negative_accuracy_is_refused_too():
    class Negative:
        def predict(self, X):
            return -np.ones(len(X))

    with pytest.raises(UserError, match="below 0"):
        nas.get_estimator(Negative(), "ofa").predict(get_space("ofa").sample_encoded(np.random.default_rng(0), 3))


def test_results_say_what_a_user_estimator_predicts_and_never_call_it_imagenet():
    res = nas.search("ofa", "pixel", 60, accuracy=CifarAccuracy(), budget=200, seed=0)
    assert res.accuracy["name"] == "my-cifar-proxy"
    assert res.accuracy["metric"] == CifarAccuracy.metric
    assert any(CifarAccuracy.metric in n for n in res.notes)
    res = nas.search("ofa", "pixel", 60, accuracy=Undeclared(), budget=200, seed=0)
    said = " ".join(res.notes) + " " + " ".join(res.accuracy.values())
    assert "ImageNet" not in said and "declares no metric" in res.accuracy["metric"]
