"""``predictor:PATH``: an accuracy predictor learned from (arch, top-1) pairs, saved as plain JSON.

``nas fit-predictor`` trains one on a user's measurements (for example subnets of a trained
supernet evaluated on a validation set): an MLP (scikit-learn's MLPRegressor) or gradient-boosted
trees over ``space.features(X)``, the one-hot of every dim. The saved file holds only numbers and
names: the weights (or the trees' arrays), the space's name, version and feature layout, and the
held-out metrics; no pickle, so loading a file runs no code. Prediction is a numpy forward pass.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search_spaces.errors import UserError

FORMAT = "hwnas-accuracy-predictor"
FORMAT_VERSION = 1
DEFAULT_METRIC = "top-1 as a fraction, as in the data it was fitted on"
KINDS = ("mlp", "gbr")
_BATCH = 65536  # rows per forward-pass chunk: bounds memory on 1M-arch populations
# The only dtype a packed array may declare: little-endian float32, what torch trains in.
_PACKED_DTYPE = "<f4"


def pack_array(a: np.ndarray) -> dict:
    """An array as JSON: its shape and its bytes as little-endian float32, base64 (a quarter of the
    size of decimal lists for wide MLPs; still plain numbers, nothing that runs code on load)."""
    a = np.ascontiguousarray(a, dtype=_PACKED_DTYPE)
    return {"dtype": "float32-le", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack_array(v: Any) -> np.ndarray:
    """A weight array saved either as nested lists (every older file) or by :func:`pack_array`."""
    if not isinstance(v, dict):
        return np.asarray(v, dtype=np.float64)
    if v.get("dtype") != "float32-le":
        raise ValueError(f"packed array dtype {v.get('dtype')!r}; this hwnas reads 'float32-le'")
    shape = [int(n) for n in v["shape"]]
    if any(n < 0 for n in shape):
        raise ValueError(f"packed array shape {shape} has a negative size")
    try:
        raw = base64.b64decode(str(v["base64"]), validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError(f"packed array is not valid base64 ({e})") from None
    if len(raw) != 4 * math.prod(shape):
        raise ValueError(f"packed array holds {len(raw)} bytes, shape {shape} needs {4 * math.prod(shape)}")
    return np.frombuffer(raw, dtype=_PACKED_DTYPE).reshape(shape).astype(np.float64)


def feature_layout(space) -> list[list]:
    """[dim name, searched choices] per dim: what each one-hot column of ``space.features`` means."""
    return [[d.name, [_jsonable(v) for v in d.searched]] for d in space.dims]


def ranking_text(meta: dict) -> str:
    """What a learned predictor can rank, from its metadata (held-out fidelity, teacher, bands)."""
    held = meta.get("heldout") or {}
    if meta.get("teacher"):
        bands = "".join(f"; {b['spearman']:.3f} among archs within 5 % of {b['budget_ms']:g} ms on {b['device']}"
                        for b in held.get("bands", []))
        return (f"ranks nets of equal MACs as its teacher does: held-out Spearman vs the teacher "
                f"{held.get('spearman')}, MAE {held.get('mae_top1_points')} top-1 points{bands}")
    rho = meta.get("heldout_spearman")
    fit = f" (held-out Spearman {rho:.3f})" if isinstance(rho, (int, float)) else ""
    return (f"ranks archs by learned per-choice effects{fit}: it can tell nets of equal MACs apart "
            f"as far as its training data does")


def _jsonable(v):
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


class LearnedPredictor:
    """An MLP or gradient-boosting regressor of top-1 (fraction) over a space's one-hot features."""

    name = "predictor"

    def __init__(self, space, kind: str = "mlp", seed: int = 0, hidden: Sequence[int] = (64, 64),
                 max_iter: int = 200, n_trees: int = 300, max_depth: int = 4, learning_rate: float = 0.1):
        self.space = space
        self.kind = kind
        self.seed = seed
        self.hidden = tuple(hidden)
        self.max_iter = max_iter
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.path = None
        # What the predicted fraction is; `nas fit-predictor --metric` names it, results repeat it.
        self.metric = DEFAULT_METRIC

    @property
    def source(self) -> str:
        meta = getattr(self, "metadata_", {}) or {}
        rho = meta.get("heldout_spearman")
        fit = f", held-out Spearman {rho:.3f}" if isinstance(rho, (int, float)) else ""
        if meta.get("description"):
            return f"{meta['description']}{fit}"
        where = f" from {self.path}" if self.path else ""
        return (f"{self.kind} predictor{where} trained on {meta.get('n_train', '?')} measured "
                f"(arch, top-1) pairs{fit}")

    @property
    def ranking(self) -> str:
        """What this estimator can rank, from its recorded held-out fidelity."""
        return ranking_text(getattr(self, "metadata_", {}) or {})

    @classmethod
    def from_layers(cls, space, layers: Sequence[tuple[np.ndarray, np.ndarray]], y_mean: float,
                    y_scale: float, seed: int = 0) -> "LearnedPredictor":
        """An MLP predictor from weights trained elsewhere (x @ W + b per layer, ReLU between)."""
        return cls.from_members(space, [layers], y_mean, y_scale, seed)

    @classmethod
    def from_members(cls, space, members: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], y_mean: float,
                     y_scale: float, seed: int = 0) -> "LearnedPredictor":
        """An ensemble of MLPs trained elsewhere, predicting the mean of their outputs.

        Members fitted alike from different seeds err in different places; their mean keeps what
        they agree on, so one member's idiosyncratic peak no longer decides a search's pick.
        """
        if not members:
            raise UserError("an MLP predictor needs at least one member")
        obj = cls(space, kind="mlp", seed=seed, hidden=[W.shape[1] for W, _ in members[0][:-1]])
        obj.members_ = [[(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in layers]
                        for layers in members]
        obj.layers_ = obj.members_[0]
        obj.y_mean_, obj.y_scale_ = float(y_mean), float(y_scale)
        obj.layout_ = feature_layout(space)
        obj.metadata_ = {"n_train": None}
        return obj

    def _members(self) -> list:
        return getattr(self, "members_", None) or [self.layers_]

    # ---- the estimator contract ---------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> "LearnedPredictor":
        """Learn from encoded archs ``X`` and top-1 fractions ``y``."""
        if self.kind not in KINDS:
            raise UserError(f"unknown predictor kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        F = self.space.features(np.asarray(X)).astype(np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        t = (y - self.y_mean_) / self.y_scale_
        if self.kind == "mlp":
            from sklearn.neural_network import MLPRegressor

            m = MLPRegressor(hidden_layer_sizes=self.hidden, alpha=1e-4, learning_rate_init=1e-3,
                             max_iter=self.max_iter, early_stopping=len(y) >= 200,
                             n_iter_no_change=20, random_state=self.seed)
            m.fit(F, t)
            self.layers_ = [(np.asarray(W), np.asarray(b)) for W, b in zip(m.coefs_, m.intercepts_)]
            self.members_ = [self.layers_]
        else:
            from sklearn.ensemble import GradientBoostingRegressor

            m = GradientBoostingRegressor(n_estimators=self.n_trees, max_depth=self.max_depth,
                                          learning_rate=self.learning_rate, subsample=0.9,
                                          random_state=self.seed)
            m.fit(F, t)
            self.init_ = float(np.ravel(m.init_.predict(F[:1]))[0])
            self.trees_ = [_tree_arrays(est[0].tree_) for est in m.estimators_]
        self.layout_ = feature_layout(self.space)
        self.metadata_ = {"n_train": int(len(y))}
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Top-1 fraction of each encoded arch, clipped to [0, 1]."""
        if not hasattr(self, "layout_"):
            raise UserError("this predictor is not fitted; call fit(X, y) or LearnedPredictor.load(path, space)")
        X = np.asarray(X)
        out = np.empty(len(X), dtype=np.float64)
        cols = self._onehot_columns()
        for start in range(0, len(X), _BATCH):
            chunk = X[start:start + _BATCH]
            if self.kind == "mlp":
                F = None if cols is not None else self.space.features(chunk)
                out[start:start + len(chunk)] = np.mean(
                    [self._forward_gather(chunk, cols, W0pad, layers) if cols is not None else self._mlp(F, layers)
                     for W0pad, layers in self._float32_members()], axis=0)
            else:
                out[start:start + len(chunk)] = self._forward(self.space.features(chunk))
        return np.clip(out * self.y_scale_ + self.y_mean_, 0.0, 1.0)

    def _onehot_columns(self) -> np.ndarray | None:
        """(n_dims, max_choices) feature column of each (dim, choice index), -1 where the one-hot is 0.

        With the base class's one-hot features, the first layer's product is a sum of the rows of
        W picked by each dim's choice: no (n, n_features) matrix is built. None for custom features.
        """
        from search_spaces.base import SearchSpace

        if type(self.space).features is not SearchSpace.features:
            return None
        if not hasattr(self, "_cols"):
            dims = self.space.dims
            cols = np.full((len(dims), max(len(d.choices) for d in dims)), -1, dtype=np.int64)
            offset = 0
            for j, d in enumerate(dims):
                idx = d.search_index
                cols[j, idx] = offset + np.arange(len(idx))
                offset += len(idx)
            self._cols = cols
        return self._cols

    def _float32_members(self) -> list:
        """Per member: (first layer's W with a zero row appended, float32 layers), made once.

        A search scores its archs ~100 at a time, and casting a wide ensemble's weights per call
        was ~10 % of the default search's scoring. Rebuilt when the members are replaced (a refit).
        """
        members = self._members()
        src = [layers[0][0] for layers in members]
        cached = getattr(self, "_f32", None)
        if cached is None or len(cached[0]) != len(src) or any(a is not b for a, b in zip(cached[0], src)):
            prepared = []
            for layers in members:
                layers32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in layers]
                W0 = layers32[0][0]
                # row -1 of the padded W: a zero one-hot (a dim's choice with no feature column)
                prepared.append((np.vstack([W0, np.zeros((1, W0.shape[1]), np.float32)]), layers32))
            self._f32 = (src, prepared)
        return self._f32[1]

    @staticmethod
    def _forward_gather(X: np.ndarray, cols: np.ndarray, W0pad: np.ndarray, layers: list) -> np.ndarray:
        """The MLP (float32 ``layers``) with its first layer as a sum of W0's picked rows."""
        b0 = layers[0][1]
        picked = cols[np.arange(X.shape[1])[None, :], X]  # (n, n_dims) feature columns
        h = np.broadcast_to(b0, (len(X), W0pad.shape[1])).copy()
        for j in range(picked.shape[1]):
            h += W0pad[picked[:, j]]
        if len(layers) == 1:
            return h[:, 0].astype(np.float64)
        np.maximum(h, 0, out=h)
        for i, (W, b) in enumerate(layers[1:], start=1):
            h = h @ W + b
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        return h[:, 0].astype(np.float64)

    @staticmethod
    def _mlp(F: np.ndarray, layers: list) -> np.ndarray:
        """The MLP (float32 ``layers``) on a feature matrix."""
        h = F.astype(np.float32)
        for i, (W, b) in enumerate(layers):
            h = h @ W + b
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        return h[:, 0].astype(np.float64)

    def _forward(self, F: np.ndarray) -> np.ndarray:
        """Trees' prediction (standardised) on features ``F``."""
        total = np.full(len(F), self.init_)
        rows = np.arange(len(F))
        for left, right, feat, thr, value in self.trees_:
            node = np.zeros(len(F), dtype=np.int64)
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = F[rows, np.maximum(feat[node], 0)] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            total += self.learning_rate * value[node]
        return total

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self, packed: bool = False) -> dict:
        """The JSON-ready model; ``packed`` stores each MLP weight array as base64 float32
        (:func:`pack_array`, what shipped models use) instead of decimal lists."""
        if not hasattr(self, "layout_"):
            raise UserError("cannot save an unfitted predictor")

        def arr(a: np.ndarray) -> list | dict:
            return pack_array(a) if packed else a.tolist()

        d: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
            "space": self.space.name, "space_version": str(getattr(self.space, "version", "1")),
            "target": self.metric, "seed": self.seed,
            "feature_layout": self.layout_, "n_features": int(sum(len(c) for _, c in self.layout_)),
            "y_mean": self.y_mean_, "y_scale": self.y_scale_, "metadata": self.metadata_,
        }
        if self.kind == "mlp":
            members = [[{"W": arr(W), "b": arr(b)} for W, b in layers] for layers in self._members()]
            # one member keeps the original layout; an ensemble lists every member's layers
            d["mlp"] = ({"activation": "relu", "layers": members[0]} if len(members) == 1
                        else {"activation": "relu", "combine": "mean", "members": members})
        else:
            d["gbr"] = {"init": self.init_, "learning_rate": self.learning_rate,
                        "trees": [{"left": l.tolist(), "right": r.tolist(), "feature": f.tolist(),
                                   "threshold": t.tolist(), "value": v.tolist()}
                                  for l, r, f, t, v in self.trees_]}
        return d

    def save(self, path: str | Path, packed: bool = False) -> Path:
        from nas.io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(packed),
                                                  separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path, space) -> "LearnedPredictor":
        """A saved predictor for ``space``; a missing, corrupt or other-space file is a UserError."""
        p = Path(path)
        if not p.is_file():
            raise UserError(f"predictor file {str(p)!r} does not exist or is not a file")
        from nas.io import parse_json_text, read_text_file

        text = read_text_file(p, "predictor file")
        try:
            d = parse_json_text(text, "its content")
        except UserError as e:
            raise UserError(f"predictor file {str(p)!r} is not a saved hwnas predictor ({e})") from None
        obj = cls.from_dict(d, space, where=str(p))
        obj.path = str(p)
        return obj

    @classmethod
    def from_dict(cls, d: Any, space, where: str = "predictor") -> "LearnedPredictor":
        from search_spaces import get_space

        space = get_space(space)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError(f"{where!r} is not a saved hwnas predictor (no format {FORMAT!r}; "
                            f"make one with `nas fit-predictor`)")
        if d.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{where!r} has predictor format version {d.get('format_version')!r}; "
                            f"this hwnas reads {FORMAT_VERSION}")
        if d.get("space") != space.name:
            raise UserError(f"{where!r} was fitted for space {d.get('space')!r}, not {space.name!r}")
        if d.get("feature_layout") != feature_layout(space):
            raise UserError(f"{where!r}: its feature layout differs from space {space.name!r} "
                            f"version {space.version} (fitted on version {d.get('space_version')!r}); refit it")
        kind = d.get("kind")
        if kind not in KINDS:
            raise UserError(f"{where!r}: unknown predictor kind {kind!r}")
        obj = cls(space, kind=kind, seed=int(d.get("seed", 0)))
        try:
            obj.layout_ = d["feature_layout"]
            obj.y_mean_, obj.y_scale_ = float(d["y_mean"]), float(d["y_scale"])
            obj.metadata_ = dict(d.get("metadata") or {})
            obj.metric = str(d.get("target") or DEFAULT_METRIC)
            n_feat = int(d["n_features"])
            if kind == "mlp":
                mlp = d["mlp"]
                listed = mlp["members"] if "members" in mlp else [mlp["layers"]]
                if not listed:
                    raise ValueError("an ensemble with no members")
                obj.members_ = [[(unpack_array(layer["W"]), unpack_array(layer["b"])) for layer in layers]
                                for layers in listed]
                obj.layers_ = obj.members_[0]
                for layers in obj.members_:
                    width = n_feat
                    for W, b in layers:
                        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
                            raise ValueError("layer shapes do not chain")
                        width = W.shape[1]
                    if width != 1:
                        raise ValueError("the last layer must have one output")
            else:
                g = d["gbr"]
                obj.init_, obj.learning_rate = float(g["init"]), float(g["learning_rate"])
                obj.trees_ = []
                for t in g["trees"]:
                    arrs = (np.asarray(t["left"], dtype=np.int64), np.asarray(t["right"], dtype=np.int64),
                            np.asarray(t["feature"], dtype=np.int64), np.asarray(t["threshold"], dtype=np.float64),
                            np.asarray(t["value"], dtype=np.float64))
                    n = len(arrs[0])
                    if any(len(a) != n for a in arrs) or arrs[2].max(initial=0) >= n_feat \
                            or arrs[0].max(initial=0) >= n or arrs[1].max(initial=0) >= n:
                        raise ValueError("tree arrays are inconsistent")
                    obj.trees_.append(arrs)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where!r} is a corrupt predictor file ({type(e).__name__}: {e})") from None
        return obj


def _tree_arrays(tree) -> tuple[np.ndarray, ...]:
    return (tree.children_left.astype(np.int64), tree.children_right.astype(np.int64),
            tree.feature.astype(np.int64), tree.threshold.astype(np.float64),
            tree.value[:, 0, 0].astype(np.float64))


# ---- training data and the fit-predictor workflow ---------------------------------------------
def read_training_data(path: str | Path) -> tuple[list[dict], np.ndarray, str]:
    """(archs, accuracies as given, column used) from a CSV or JSON file of (arch, top-1) pairs."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data file {str(p)!r} does not exist or is not a file")
    from nas.io import parse_json_text, read_text_file

    text = read_text_file(p, "data file")
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        data = parse_json_text(text, f"data file {str(p)!r}")
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            data = data["records"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UserError(f"data file {str(p)!r}: expected a list of {{\"arch\": ..., \"top1\": ...}} objects")
        records = data
        columns = set().union(*(r.keys() for r in records)) if records else set()
    else:
        reader = csv.DictReader(io.StringIO(text))
        columns = set(reader.fieldnames or [])
        records = list(reader)
    col = next((c for c in ("top1", "accuracy") if c in columns), None)
    if "arch" not in columns or col is None:
        missing = [c for c in ("arch",) if c not in columns] + ([] if col else ["top1 (or accuracy)"])
        raise UserError(f"data file {str(p)!r}: missing column(s) {', '.join(missing)}; "
                        f"found: {', '.join(sorted(columns)) or 'none'}")
    archs, acc = [], []
    for i, r in enumerate(records, start=1):
        arch, value = r.get("arch"), r.get(col)
        if isinstance(arch, str):
            arch = parse_json_text(arch, f"data file {str(p)!r}, row {i}: arch")
        if not isinstance(arch, dict):
            raise UserError(f"data file {str(p)!r}, row {i}: arch must be a JSON object")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UserError(f"data file {str(p)!r}, row {i}: {col} {value!r} is not a number") from None
        if not math.isfinite(v):
            raise UserError(f"data file {str(p)!r}, row {i}: {col} is {value!r}")
        archs.append(arch)
        acc.append(v)
    return archs, np.asarray(acc, dtype=np.float64), col


def to_fraction(acc: np.ndarray) -> tuple[np.ndarray, str]:
    """Accuracies as fractions, and which unit they were given in ("fraction" or "percent")."""
    if acc.size and acc.min() < 0:
        raise UserError(f"accuracies must not be negative (min {acc.min():g})")
    if acc.size and acc.max() > 1.0:
        if acc.max() > 100.0:
            raise UserError(f"accuracies above 100 (max {acc.max():g}); give top-1 as a fraction or a percent")
        return acc / 100.0, "percent"
    return acc, "fraction"


def encode_rows(space, archs: list[dict], where: str) -> np.ndarray:
    """The encoded matrix; an invalid arch is reported with its row number."""
    try:
        return space.encode(archs)
    except UserError:
        for i, a in enumerate(archs, start=1):
            try:
                space.encode([a])
            except UserError as e:
                raise UserError(f"{where}, row {i}: not an arch of space {space.name!r}: {e}") from None
        raise


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    rho = float(spearmanr(a, b)[0])
    return rho if np.isfinite(rho) else 0.0


def fit_predictor(space, data: str | Path, out: str | Path, kind: str = "mlp", seed: int = 0,
                  test_frac: float = 0.2, metric: str | None = None) -> dict:
    """Train a predictor on a data file, report held-out Spearman and MAE, save it to ``out``.

    Returns a summary dict (also stored in the saved model's ``metadata``).
    """
    from search_spaces import get_space

    space = get_space(space)
    if kind not in KINDS:
        raise UserError(f"unknown predictor kind {kind!r}; allowed: {', '.join(KINDS)}")
    if not 0.0 < test_frac < 1.0:
        raise UserError(f"--test-frac must be between 0 and 1, got {test_frac}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
    archs, acc, col = read_training_data(data)
    y, unit = to_fraction(acc)
    n = len(y)
    n_test = int(round(n * test_frac))
    if n < 10 or n_test < 3 or n - n_test < 5:
        raise UserError(f"data file {str(data)!r}: {n} pairs are too few; need at least 10 "
                        f"(with --test-frac {test_frac}: >= 3 held out and >= 5 to train)")
    X = encode_rows(space, archs, f"data file {str(data)!r}")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    model = LearnedPredictor(space, kind=kind, seed=seed).fit(X[train], y[train])
    pred = model.predict(X[test])
    summary = {
        "data": str(data), "column": col, "unit_detected": unit, "n_pairs": n,
        "n_train": int(len(train)), "n_heldout": int(len(test)), "heldout_frac": test_frac,
        "heldout_spearman": round(spearman(pred, y[test]), 4),
        "heldout_mae_top1_points": round(float(np.mean(np.abs(pred - y[test]))) * 100, 3),
        "kind": kind, "seed": seed, "space": space.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "the saved model is the one trained on the n_train pairs; the metrics are on the held-out pairs",
    }
    model.metadata_ = summary
    model.metric = metric or DEFAULT_METRIC
    model.save(out)
    return summary
