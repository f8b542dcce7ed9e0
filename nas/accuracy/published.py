"""The ``published`` accuracy prior: ImageNet top-1 from MACs, params and resolution.

A ridge regression fitted on published results that hwnas records itself, with citations, in
``published_results.yaml`` (MobileNetV2/V3, MnasNet, FBNet, ProxylessNAS and Once-for-All's
released nets). It is a prior: it knows how big a net is, not which of two equally big nets is
better, so strategies that use it favour nets that spend their budget on MACs and resolution.

Model (top-1 in points, then divided by 100)::

    top1 = b0 - b1*(MACs/1e6)^(-gamma) + b3*p + b4*r + b5*[recipe == ofa]

with p = ln(params / 1e6), r = ln(resolution / 224). The power law in MACs (b1 >= 0) is the
shape of every published accuracy-vs-compute curve: strictly increasing with diminishing
returns, so a bigger net never scores lower and the curve flattens without a cliff; gamma is
chosen by leave-one-out error at fit time. Every feature is clipped to the range the published
nets span, so the prediction never extrapolates; it never leaves [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from search_spaces.errors import UserError

DATA_FILE = Path(__file__).with_name("published_results.yaml")
RECIPES = ("scratch", "ofa")
FEATURES = ("-macs_m^-gamma", "ln_params_m", "ln_res_224", "recipe_ofa")
# Exponents above 1 flatten the curve beyond ~100M MACs, which Once-for-All's own
# 389M / 482M / 595M nets (79.1 / 79.6 / 80.0 %) contradict, so the search stops at 1.
GAMMAS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
DEFAULT_ALPHA = 0.1  # chosen by leave-one-out MAE among 0.01, 0.1, 1 (docs/accuracy.md)
METRIC = "ImageNet top-1 (fraction), a prior from published results"
SHORT_SOURCE = "size-only prior fitted on published ImageNet results (MACs, params, resolution)"
RANKING = ("ranks nets by size only (MACs, params, resolution): it cannot tell two nets of equal MACs apart, "
           "so a search with it spends the budget on MACs rather than on the best layers")


@dataclass(frozen=True)
class PublishedResult:
    """One recorded fact: a published net's size and top-1 (%), with where it comes from."""

    name: str
    family: str
    recipe: str
    resolution: int
    macs_m: float
    params_m: float | None
    top1: float
    citation: str


@lru_cache(maxsize=4)
def load_published_results(path: str | Path = DATA_FILE) -> tuple[PublishedResult, ...]:
    """The recorded results; a malformed data file is a UserError naming the row."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"published results {str(path)!r} cannot be read ({e})") from None
    rows = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise UserError(f"published results {str(path)!r}: expected a non-empty 'results' list")
    out = []
    for i, r in enumerate(rows):
        try:
            res = PublishedResult(str(r["name"]), str(r["family"]), str(r["recipe"]),
                                  int(r["resolution"]), float(r["macs_m"]),
                                  None if r.get("params_m") is None else float(r["params_m"]),
                                  float(r["top1"]), str(r["citation"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"published results {str(path)!r}: row {i} is malformed ({e})") from None
        if res.recipe not in RECIPES:
            raise UserError(f"published results: row {res.name!r} has recipe {res.recipe!r}; "
                            f"allowed: {', '.join(RECIPES)}")
        out.append(res)
    return tuple(out)


def _raw_features(macs: np.ndarray, params: np.ndarray, res: np.ndarray, ofa: np.ndarray) -> np.ndarray:
    """(n, 4) raw features before clipping: ln MACs (M), ln params (M), ln(res/224), recipe flag."""
    return np.stack([np.log(np.maximum(macs, 1.0) / 1e6), np.log(np.maximum(params, 1.0) / 1e6),
                     np.log(np.asarray(res, dtype=np.float64) / 224.0),
                     np.asarray(ofa, dtype=np.float64)], axis=1)


def _macs_params(space, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MACs and params of each arch; one block-matrix pass when the space uses the generic sums."""
    from search_spaces.base import SearchSpace

    cls = type(space)
    if cls.macs is SearchSpace.macs and cls.params is SearchSpace.params:
        block_macs, block_params = space.block_costs()
        ids = space.block_matrix(X)
        return np.append(block_macs, 0)[ids].sum(1), np.append(block_params, 0)[ids].sum(1)
    return space.macs(X), space.params(X)


def _design(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray, gamma: float) -> np.ndarray:
    c = np.clip(raw, lo, hi)
    return np.stack([-np.exp(-gamma * c[:, 0]), c[:, 1], c[:, 2], c[:, 3]], axis=1)


def _loo_mae(D: np.ndarray, y: np.ndarray, alpha: float) -> float:
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mu, sd, coef, b0 = _ridge(D[keep], y[keep], alpha)
        errs.append(abs(b0 + ((D[i] - mu) / sd) @ coef - y[i]))
    return float(np.mean(errs))


def _ridge(D: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge on standardised columns, intercept unpenalised; returns (mu, sd, coef, intercept)."""
    mu, sd = D.mean(0), D.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (D - mu) / sd
    yc = y - y.mean()
    coef = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ yc)
    return mu, sd, coef, float(y.mean())


class PublishedPrior:
    """Top-1 prior from published ImageNet results, for archs of any space that prices MACs/params.

    ``recipe`` says how the space's nets would be trained: ``"ofa"`` (a Once-for-All subnet,
    progressive shrinking + fine-tuning) or ``"scratch"``; by default ``"ofa"`` for the ``ofa*``
    spaces and for spaces with ``accuracy_recipe = "ofa"``, else ``"scratch"``.
    """

    name = "published"
    metric = METRIC

    def __init__(self, space, recipe: str | None = None, alpha: float = DEFAULT_ALPHA,
                 data_path: str | Path | None = None):
        self.space = space
        self.recipe = recipe
        self.alpha = alpha
        self.data_path = data_path

    # ---- the estimator contract ---------------------------------------------------------------
    @property
    def source(self) -> str:
        n = len(self._rows())
        return (f"prior fitted on {n} published ImageNet results (MobileNetV2/V3, MnasNet, "
                f"ProxylessNAS, Once-for-All released nets) from MACs, params and resolution; "
                f"an estimate, not a measurement of this arch")

    @property
    def ranking(self) -> str:
        return RANKING + (alternatives(self.space) if self.space is not None else "")

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None) -> "PublishedPrior":
        """Fit on the published results, plus (optionally) this space's archs ``X`` with top-1 ``y``.

        ``y`` is a fraction in [0, 1] like ``predict``'s output.
        """
        recipe = self._recipe()
        self.recipe_ = recipe
        rows = [r for r in self._rows() if r.params_m is not None]
        raw = _raw_features(np.array([r.macs_m for r in rows]) * 1e6,
                            np.array([r.params_m for r in rows]) * 1e6,
                            np.array([r.resolution for r in rows]),
                            np.array([r.recipe == "ofa" for r in rows]))
        top1 = np.array([r.top1 for r in rows])
        if X is not None or y is not None:
            if X is None or y is None or len(X) != len(y):
                raise UserError("fit: pass both X (encoded archs) and y (top-1 fractions), of equal length")
            y = np.asarray(y, dtype=np.float64)
            if len(y) and not (np.all(y >= 0) and np.all(y <= 1)):
                raise UserError("fit: y must be top-1 fractions in [0, 1]")
            raw = np.concatenate([raw, self._space_raw(np.asarray(X), recipe)])
            top1 = np.concatenate([top1, 100.0 * y])
        lo, hi = raw.min(0), raw.max(0)
        # The exponent with the lowest leave-one-out error among those that keep accuracy
        # increasing in MACs (a negative MACs coefficient would be unphysical).
        best = None
        for gamma in GAMMAS:
            D = _design(raw, lo, hi, gamma)
            if _ridge(D, top1, self.alpha)[2][0] <= 0:
                continue
            mae = _loo_mae(D, top1, self.alpha)
            if best is None or mae < best[0]:
                best = (mae, gamma)
        if best is None:
            raise UserError("the published prior found no increasing accuracy-vs-MACs fit in its data")
        self.gamma_ = best[1]
        mu, sd, coef, intercept = _ridge(_design(raw, lo, hi, self.gamma_), top1, self.alpha)
        self.clip_lo_, self.clip_hi_ = lo, hi
        self.mu_, self.sd_, self.coef_, self.intercept_ = mu, sd, coef, intercept
        self.n_train_ = len(top1)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """ImageNet top-1 fraction of each encoded arch (vectorised; fits on first use)."""
        if not hasattr(self, "coef_"):
            self.fit()
        X = np.asarray(X)
        if X.ndim != 2:
            raise UserError(f"predict expects an (n, n_dims) encoded matrix, got shape {X.shape}")
        raw = self._space_raw(X, self.recipe_)
        return self._predict_raw(raw)

    # ---- helpers ------------------------------------------------------------------------------
    def predict_published(self, rows) -> np.ndarray:
        """Top-1 fraction for recorded results (rows without params are skipped by the caller)."""
        raw = _raw_features(np.array([r.macs_m for r in rows]) * 1e6,
                            np.array([r.params_m for r in rows]) * 1e6,
                            np.array([r.resolution for r in rows]),
                            np.array([r.recipe == "ofa" for r in rows]))
        return self._predict_raw(raw)

    def _predict_raw(self, raw: np.ndarray) -> np.ndarray:
        D = _design(raw, self.clip_lo_, self.clip_hi_, self.gamma_)
        top1 = self.intercept_ + ((D - self.mu_) / self.sd_) @ self.coef_
        return np.clip(top1 / 100.0, 0.0, 1.0)

    def _space_raw(self, X: np.ndarray, recipe: str) -> np.ndarray:
        try:
            macs, params = _macs_params(self.space, X)
        except NotImplementedError:
            raise UserError(f"the published prior needs MACs and params; space "
                            f"{getattr(self.space, 'name', self.space)!r} cannot price them") from None
        res = self.space.resolution(X)
        return _raw_features(np.asarray(macs, dtype=np.float64), np.asarray(params, dtype=np.float64),
                             res, np.full(len(X), recipe == "ofa"))

    def _recipe(self) -> str:
        recipe = self.recipe or getattr(self.space, "accuracy_recipe", None)
        if recipe is None:
            recipe = "ofa" if str(getattr(self.space, "name", "")).startswith("ofa") else "scratch"
        if recipe not in RECIPES:
            raise UserError(f"unknown training recipe {recipe!r}; allowed: {', '.join(RECIPES)}")
        return recipe

    def _rows(self) -> tuple[PublishedResult, ...]:
        return load_published_results(self.data_path or DATA_FILE)


def leave_one_out(alpha: float = DEFAULT_ALPHA, data_path: str | Path | None = None) -> list[dict]:
    """Each usable published result predicted by the prior fitted on all the others."""
    rows = [r for r in load_published_results(data_path or DATA_FILE) if r.params_m is not None]
    out = []
    for i, r in enumerate(rows):
        rest = tuple(rows[:i] + rows[i + 1:])
        prior = _PriorOn(rest, alpha)
        pred = 100.0 * float(prior.predict_published([r])[0])
        out.append({"name": r.name, "family": r.family, "top1": r.top1, "predicted": round(pred, 2),
                    "error": round(pred - r.top1, 2)})
    return out


class _PriorOn(PublishedPrior):
    """The prior fitted on a given subset of rows (for leave-one-out)."""

    def __init__(self, rows, alpha):
        super().__init__(space=None, recipe="scratch", alpha=alpha)
        self._subset = rows
        self.fit()

    def _rows(self):
        return self._subset


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Leave-one-out error of the published prior, per family.")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--rows", action="store_true", help="also print every row")
    args = ap.parse_args(argv)
    loo = leave_one_out(args.alpha)
    fams = sorted({r["family"] for r in loo})
    print(f"{'family':<22}{'n':>4}{'MAE (top-1 points)':>20}{'max |err|':>11}")
    for f in fams + ["all"]:
        errs = np.array([abs(r["error"]) for r in loo if f == "all" or r["family"] == f])
        print(f"{f:<22}{len(errs):>4}{errs.mean():>20.2f}{errs.max():>11.2f}")
    if args.rows:
        for r in loo:
            print(f"  {r['name']:<32}{r['top1']:>7.1f}{r['predicted']:>8.2f}{r['error']:>+7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


def alternatives(space) -> str:
    """The sentence pointing to the estimators that can rank nets of one size, for this space.

    (``supernet:CKPT`` and ``predictor:PATH`` are built-in estimators of ``nas.accuracy``.)
    """
    name = getattr(space, "name", space)
    specs = ["supernet:CKPT", "predictor:PATH (nas fit-predictor on your measured archs)"]
    if name == "ofa":
        specs.insert(0, "ofa (Once-for-All's released predictor)")
    return f"; to rank nets of equal size use --accuracy {' or '.join(specs)}"
