"""Once-for-All's released ImageNet accuracy predictor for the w1.2 MobileNetV3 space.

A 128 -> 400 -> 400 -> 400 -> 1 MLP with ReLU (Cai et al., ICLR 2020). Its input is, per layer slot,
a one-hot of the kernel {3, 5, 7} (60 values), then per slot a one-hot of the expand ratio {3, 4, 6}
(60), then a one-hot of the resolution index (r - 112) // 16 (8); slots past a stage's depth are
zeros. The output is top-1 as a fraction.
"""

from __future__ import annotations

import warnings

from pathlib import Path

import numpy as np
import torch

from search_spaces.base import SearchSpace
from search_spaces.errors import UserError

from nas.fetch import Remote

from .base import as_matrix

# Once-for-All's released predictor, as its own tutorial code downloads it
# (ofa/tutorial/accuracy_predictor.py in mit-han-lab/once-for-all; the older tutorial's address
# is kept as a fallback). The hash is of the released file.
RELEASED = Remote(
    filename="ofa_acc_predictor.pth",
    urls=("https://raw.githubusercontent.com/han-cai/files/master/ofa/acc_predictor.pth",
          "https://hanlab.mit.edu/files/OnceForAll/tutorial/acc_predictor.pth"),
    sha256="48685122a3540636b06699af66cd816456b25f29b69563e2fda9bed4018eeba0",
    what="Once-for-All's released accuracy predictor (acc_predictor.pth)",
    url_env="HWNAS_OFA_PREDICTOR_URL",
)
METRIC = "ImageNet top-1 (fraction) of subnets of Once-for-All's trained w1.2 supernet, as its predictor estimates it"

N_SLOTS = 20
N_RES_BINS = 8
EXPECTED_SHAPES = {"0.weight": (400, 128), "0.bias": (400,), "2.weight": (400, 400), "2.bias": (400,),
                   "4.weight": (400, 400), "4.bias": (400,), "6.weight": (1, 400), "6.bias": (1,)}


def ofa_features(space: SearchSpace, X: np.ndarray) -> np.ndarray:
    """Once-for-All's 128-value encoding of each arch, vectorised over the matrix."""
    X = np.asarray(X)
    n = len(X)
    active = space.active_slots(X).astype(np.float32)
    ks = np.zeros((n, N_SLOTS, 3), np.float32)
    es = np.zeros((n, N_SLOTS, 3), np.float32)
    rows, slots = np.arange(n)[:, None], np.arange(N_SLOTS)[None, :]
    ks[rows, slots, X[:, :N_SLOTS]] = active
    es[rows, slots, X[:, N_SLOTS:2 * N_SLOTS]] = active
    res_bin = (space.resolution(X) - 112) // 16
    if (res_bin < 0).any() or (res_bin >= N_RES_BINS).any():
        bad = space.resolution(X)[(res_bin < 0) | (res_bin >= N_RES_BINS)][0]
        raise UserError(f"resolution {bad} is outside the OFA predictor's range 112..239")
    r = np.zeros((n, N_RES_BINS), np.float32)
    r[np.arange(n), res_bin] = 1.0
    return np.concatenate([ks.reshape(n, -1), es.reshape(n, -1), r], axis=1)


class OFAAccuracyPredictor:
    """Loads ``acc_predictor.pth`` (weights only) and predicts top-1 for ``ofa`` archs."""

    name = "ofa-predictor"
    metric = METRIC
    ranking = ("ranks subnets by Once-for-All's predictor, fitted on measured subnets of its trained "
               "supernet: it tells nets of equal MACs apart")

    def __init__(self, space: SearchSpace, path: str | Path):
        if getattr(space, "name", None) != "ofa":
            raise UserError(f"the OFA accuracy predictor covers the 'ofa' (w1.2) space, not {space.name!r}")
        self.space = space
        self.path = Path(path)
        self.source = f"Once-for-All's released accuracy predictor ({self.path.name})"
        # Plain float32 numpy: for populations of 100-1000 archs torch's per-op dispatch and thread
        # start-up cost more than the arithmetic, and contend badly on a busy machine.
        self.weights_ = [(w.T.copy(), b) for w, b in self._load(self.path)]

    @staticmethod
    def _load(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        if not path.is_file():
            raise UserError(f"OFA predictor file {str(path)!r} does not exist")
        try:
            with warnings.catch_warnings():
                # torch warns about a plain pickle's protocol before refusing it: the refusal below says it.
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise UserError(f"{str(path)!r} is not a readable torch state dict ({type(e).__name__})") from None
        shapes = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else None
        if shapes != EXPECTED_SHAPES:
            raise UserError(f"{str(path)!r} is not Once-for-All's acc_predictor.pth "
                            "(expected an MLP 128-400-400-400-1 state dict with keys 0.*, 2.*, 4.*, 6.*)")
        return [(state[f"{i}.weight"].float().numpy(), state[f"{i}.bias"].float().numpy()) for i in (0, 2, 4, 6)]

    def features(self, X) -> np.ndarray:
        return ofa_features(self.space, as_matrix(self.space, X))

    def predict(self, X) -> np.ndarray:
        h = self.features(X)
        for i, (w, b) in enumerate(self.weights_):
            h = h @ w + b
            if i < len(self.weights_) - 1:
                np.maximum(h, 0.0, out=h)
        return h[:, 0].astype(np.float64)
