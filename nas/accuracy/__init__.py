"""Accuracy estimators, reachable by spec: ``published``, ``ofa-predictor:PATH``, ``predictor:PATH``, ``supernet:CKPT``.

Every estimator predicts ImageNet top-1 as a fraction from a space's encoded matrix; any object
with ``predict(X)`` stands in for one.
"""

from __future__ import annotations

from typing import Callable

from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from .base import AccuracyEstimator, as_matrix, describe

# name -> factory(space, arg) ; arg is the text after "name:" (None when absent)
_ESTIMATORS: dict[str, tuple[Callable, bool, str]] = {}


def register_estimator(name: str, needs_path: bool = False, help: str = ""):
    def deco(factory):
        _ESTIMATORS[name] = (factory, needs_path, help)
        return factory

    return deco


def list_estimators() -> list[str]:
    return [f"{n}:PATH" if p else n for n, (_, p, _) in sorted(_ESTIMATORS.items())]


def get_estimator(spec, space: SearchSpace | str):
    """The estimator for ``spec`` (a string like ``ofa-predictor:acc.pth`` or an object with predict)."""
    if spec is None:
        spec = "published"
    if not isinstance(spec, str):
        if not callable(getattr(spec, "predict", None)):
            raise UserError("an accuracy estimator object needs a predict(X) method")
        return spec
    space = get_space(space)
    name, sep, arg = spec.partition(":")
    if name not in _ESTIMATORS:
        raise UserError(f"unknown accuracy estimator {spec!r}; accepted: {', '.join(list_estimators())}")
    factory, needs_path, _ = _ESTIMATORS[name]
    if needs_path and not arg:
        raise UserError(f"accuracy estimator {name!r} needs a file: {name}:PATH")
    return factory(space, arg or None)


@register_estimator("ofa-predictor", needs_path=True, help="Once-for-All's released acc_predictor.pth")
def _ofa(space, path):
    from .ofa_predictor import OFAAccuracyPredictor

    return OFAAccuracyPredictor(space, path)


@register_estimator("published", help="prior fitted on published ImageNet results")
def _published(space, _arg):
    from .published import PublishedPrior

    return PublishedPrior(space)


@register_estimator("predictor", needs_path=True, help="a predictor trained by `nas fit-predictor`")
def _learned(space, path):
    from .learned import LearnedPredictor

    return LearnedPredictor.load(path, space)


@register_estimator("supernet", needs_path=True,
                    help="top-1 measured with a trained supernet: supernet:CKPT[,data=SPEC] (see --data)")
def _supernet(space, arg):
    from .supernet import SupernetAccuracy, parse_spec

    opts = parse_spec(arg)
    return SupernetAccuracy(space, opts["ckpt"], data=opts["data"], calib_images=opts["calib"])


__all__ = ["AccuracyEstimator", "as_matrix", "describe", "get_estimator", "list_estimators",
           "register_estimator"]
