"""Accuracy estimators, reachable by spec: ``default``, ``published``, ``ofa``, ``ofa-predictor:PATH``,
``predictor:PATH``, ``supernet:CKPT``.

Every estimator predicts accuracy as a fraction in [0, 1] from a space's encoded matrix, and says
what that fraction is (``metric``), where its numbers come from (``source``) and what it can rank
(``ranking``). Any object with ``predict(X)`` stands in for one; its outputs are checked to be
fractions. ``default`` is the model shipped for the space (``nas/accuracy/models/SPACE.json``, the
``ofa`` space's is distilled from Once-for-All's released predictor) or else the ``published`` prior.
"""

from __future__ import annotations

from typing import Callable

from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from .base import AccuracyEstimator, UnitChecked, as_matrix, describe
from .published import alternatives  # noqa: F401  (public here too)
from .shipped import shipped_model_path

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
        spec = "default"
    if not isinstance(spec, str):
        if not callable(getattr(spec, "predict", None)):
            raise UserError("an accuracy estimator object needs a predict(X) method")
        return spec if isinstance(spec, UnitChecked) else UnitChecked(spec)
    space = get_space(space)
    if spec == "default":
        spec = default_spec(space)
    name, sep, arg = spec.partition(":")
    if name not in _ESTIMATORS:
        raise UserError(f"unknown accuracy estimator {spec!r}; accepted: {', '.join(list_estimators())}")
    factory, needs_path, _ = _ESTIMATORS[name]
    if needs_path and not arg:
        raise UserError(f"accuracy estimator {name!r} needs a file: {name}:PATH")
    return factory(space, arg or None)


def default_spec(space: SearchSpace | str) -> str:
    """The estimator a search uses when none is named: the space's shipped model, else ``published``."""
    name = getattr(space, "name", space)
    return "shipped" if isinstance(name, str) and shipped_model_path(name) is not None else "published"


def default_summary(space: SearchSpace | str) -> dict:
    """{"spec", "source", "ranking"} of the default estimator, cheaply (for `nas spaces`)."""
    spec = default_spec(space)
    if spec == "shipped":
        from .shipped import ShippedModelInfo

        info = ShippedModelInfo.read(shipped_model_path(getattr(space, "name", space)))
        return {"spec": "default (shipped)", "source": info.source, "ranking": info.ranking}
    from .published import RANKING, SHORT_SOURCE, alternatives

    return {"spec": "default (published)", "source": SHORT_SOURCE, "ranking": RANKING + alternatives(space)}


@register_estimator("ofa", help="Once-for-All's released acc_predictor.pth, fetched once into ~/.hwnas/cache")
def _ofa_released(space, _arg):
    from nas.fetch import fetch

    from .ofa_predictor import RELEASED, OFAAccuracyPredictor

    if getattr(space, "name", None) != "ofa":
        raise UserError(f"Once-for-All's released predictor covers the 'ofa' (w1.2) space, not {space.name!r}")
    return OFAAccuracyPredictor(space, fetch(RELEASED))


@register_estimator("shipped", help="the model shipped with hwnas for this space (the default where one exists)")
def _shipped(space, _arg):
    from .learned import LearnedPredictor

    path = shipped_model_path(space.name)
    if path is None:
        raise UserError(f"hwnas ships no accuracy model for space {space.name!r}; use published or predictor:PATH")
    est = LearnedPredictor.load(path, space)
    est.name = "shipped"
    return est


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
                    help="top-1 measured with a trained supernet: supernet:CKPT[,data=SPEC][,calib=N][,workers=N] "
                         "(see --data)")
def _supernet(space, arg):
    from .supernet import SupernetAccuracy, parse_spec

    opts = parse_spec(arg)
    return SupernetAccuracy(space, opts["ckpt"], data=opts["data"], calib_images=opts["calib"],
                            workers=opts["workers"])


__all__ = ["AccuracyEstimator", "UnitChecked", "alternatives", "as_matrix", "default_spec", "default_summary",
           "describe", "get_estimator", "list_estimators", "register_estimator"]
