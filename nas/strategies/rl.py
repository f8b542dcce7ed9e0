"""MnasNet's search strategy: an LSTM controller trained by policy gradients (Tan et al., CVPR 2019).

The controller emits an arch token by token, one token per dim of any space (so it works for
every registered and custom space), each token fed back as the next input. Each controller step
samples a batch, scores it with the objective, and updates the policy with PPO's clipped
surrogate (MnasNet's choice) or REINFORCE with a moving-average baseline, plus an entropy bonus.

Rewards: with ``--reward mnas`` / ``mnas-hard`` the objective's MnasNet reward
``ACC * (LAT/T)^w``. With the constrained ``hard`` objective, archs over budget get no accuracy
evaluation (the budget counts evaluations); they are rewarded as the batch's worst in-budget arch
scaled by ``T / LAT`` (MnasNet's hard-constraint exponent of -1 on a pessimistic accuracy), so the
controller learns where the budget lies without spending evaluations there.

Sampling uses the numpy generator the runner checkpoints, and the controller's weights and Adam
moments are plain arrays in the strategy state, so a resumed search continues exactly and a reused
strategy object starts every search from the same initial controller.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from search_spaces.errors import UserError

from .base import Param, Strategy, allowed
from .registry import register_strategy

MAX_EMPTY_STEPS = 200


class _one_thread:
    """A 64-unit LSTM: torch threads only add hand-off cost."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


class Controller(nn.Module):
    """An LSTM that reads the previous token and emits a distribution over the next dim's values."""

    def __init__(self, n_choices: list[int], hidden: int = 64):
        super().__init__()
        self.n_choices = list(n_choices)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_choices)])
        total = int(self.offsets[-1])
        self.embed = nn.Embedding(total + 1, hidden)  # last row: the start token
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, total)
        # step s may only emit its own dim's values: other columns are masked out
        owner = np.repeat(np.arange(len(self.n_choices)), self.n_choices)
        self.register_buffer("foreign", torch.from_numpy(owner[None, :] != np.arange(len(self.n_choices))[:, None]),
                             persistent=False)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, n_dims) token indices drawn with numpy (reproducible, checkpointable randomness)."""
        out = np.empty((n, len(self.n_choices)), np.int64)
        with torch.no_grad():
            x = self.embed(torch.full((n, 1), int(self.offsets[-1]), dtype=torch.long))
            state = None
            for step in range(len(self.n_choices)):
                y, state = self.lstm(x, state)
                lo, hi = int(self.offsets[step]), int(self.offsets[step + 1])
                logits = torch.nn.functional.linear(y[:, 0], self.head.weight[lo:hi], self.head.bias[lo:hi])
                p = torch.softmax(logits.double(), dim=1).numpy()
                tok = (np.cumsum(p, axis=1) < rng.random((n, 1))).sum(axis=1)
                out[:, step] = np.minimum(tok, p.shape[1] - 1)
                x = self.embed(torch.from_numpy(out[:, step:step + 1] + lo))
        return out

    def log_prob(self, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of each token sequence and the policy's mean entropy per step.

        The whole sequence runs as one LSTM call (teacher forcing on the sampled tokens): a
        step-by-step loop costs ~10x more in autograd bookkeeping.
        """
        n, steps = tokens.shape
        flat = torch.from_numpy(tokens + self.offsets[:-1][None, :])
        start = torch.full((n, 1), int(self.offsets[-1]), dtype=torch.long)
        y, _ = self.lstm(self.embed(torch.cat([start, flat[:, :-1]], dim=1)))
        logits = self.head(y).masked_fill(self.foreign, float("-inf"))
        lp = torch.log_softmax(logits, dim=2)
        logp = lp.gather(2, flat[:, :, None])[:, :, 0].sum(dim=1)
        # masked columns: p = 0 exactly; zero their log-probs too (0 * -inf would poison gradients)
        ent = -(lp.exp() * lp.masked_fill(self.foreign, 0.0)).sum(dim=2).mean(dim=1)
        return logp, ent


def _flat(params) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy().astype(np.float64)


def _load_flat(params, vec: np.ndarray) -> None:
    i = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(vec[i:i + p.numel()]).reshape(p.shape).to(p.dtype))
            i += p.numel()


@register_strategy("rl")
class RLController(Strategy):
    """LSTM controller + PPO (or REINFORCE) on the objective's reward, a batch per step."""

    PARAMS = {"batch_size": Param(int, None, lo=1), "hidden": Param(int, 64, lo=1, hi=4096),
              "lr": Param(float, 0.005, lo=0, hi=10, lo_open=True), "algorithm": Param(str, "ppo", choices=("ppo", "reinforce")),
              "ppo_epochs": Param(int, 4, lo=1, hi=100), "clip": Param(float, 0.2, lo=0, hi=1, lo_open=True),
              "entropy": Param(float, 0.02, lo=0), "baseline_decay": Param(float, 0.9, lo=0, hi=1),
              "pool": Param(int, 2, lo=1, hi=1000), "penalty": Param(float, 1.0, lo=0),
              "constraint": Param(str, "reject", choices=("reject", "penalty")), "init_seed": Param(int, 0, lo=0)}

    def auto(self, rule):
        return {"batch_size": rule["rl_batch"]}

    def batch(self, ctx, state):
        return ctx.params["batch_size"]

    # ---- state <-> controller (the module is per run, in ctx.scratch; its weights are state) --------
    def _controller(self, ctx, state) -> Controller:
        ctl = ctx.scratch.get("rl_controller")
        if ctl is None:
            with torch.random.fork_rng():  # leave the caller's torch RNG untouched
                torch.manual_seed(ctx.params["init_seed"])
                ctl = ctx.scratch["rl_controller"] = Controller([int(c) for c in ctx.grid.counts],
                                                                 ctx.params["hidden"])
        if "weights" in state:
            _load_flat(ctl.parameters(), state["weights"])
        return ctl

    def init(self, ctx, rng):
        w = _flat(self._controller(ctx, {}).parameters())
        return {"weights": w, "adam_m": np.zeros_like(w), "adam_v": np.zeros_like(w),
                "adam_t": np.zeros(1), "baseline": np.full(1, np.nan), "empty_steps": np.zeros(1),
                "tokens": np.empty((0, ctx.grid.n_dims), np.int64)}

    def ask(self, state, ctx, n, rng):
        with _one_thread():
            ctl = self._controller(ctx, state)
            p = ctx.params
            if ctx.objective.constrained() and p["constraint"] == "reject":
                # Constraint-aware sampling from the policy: only admissible (feasible, unseen)
                # samples are kept, so the policy gradient runs over the admissible part of the
                # policy and no evaluation is spent over budget or twice.
                toks, xs, got = [], [], 0
                for _ in range(MAX_EMPTY_STEPS):
                    tokens = ctl.sample(p["batch_size"] * p["pool"], rng)
                    X = ctx.grid.from_positions(tokens)
                    ok = ctx.admissible(X, exclude=np.concatenate(xs) if xs else None)
                    toks.append(tokens[ok])
                    xs.append(X[ok])
                    got += int(ok.sum())
                    if got >= n:
                        break
                tokens, X = np.concatenate(toks)[:n], np.concatenate(xs)[:n]
            else:
                # Sample a pool; up to n of its admissible archs get an accuracy evaluation.
                # Over-budget samples cost no evaluation but still teach the controller
                # (pessimistic reward); admissible samples past the batch are dropped.
                tokens = ctl.sample(p["batch_size"] * p["pool"], rng)
                X = ctx.grid.from_positions(tokens)
                lat = ctx.latency(X)
                ok = ctx.admissible(X, lat)
                idx = np.flatnonzero(ok)[:n]
                used = np.union1d(idx, np.flatnonzero(~allowed(ctx.objective, lat)))
                tokens, X = tokens[used], X[used]
        state["tokens"] = tokens
        return X

    def tell(self, state, ctx, X, told):
        tokens = state["tokens"]
        state["tokens"] = np.empty((0, ctx.grid.n_dims), np.int64)
        p, obj = ctx.params, ctx.objective
        known = told.known
        if known.any():
            state["empty_steps"][0] = 0
        else:
            state["empty_steps"][0] += 1
            if state["empty_steps"][0] >= MAX_EMPTY_STEPS:
                raise UserError(f"the RL controller sampled no arch within the budget in {MAX_EMPTY_STEPS} steps")
        reward = np.where(known, told.score if not obj.constrained() else told.acc, 0.0)
        use = known.copy()
        if not (obj.constrained() and p["constraint"] == "reject"):
            rest = ~allowed(obj, told.lat_ms)
            if rest.any():
                base = state["baseline"][0]
                floor = reward[known].min() if known.any() else (base if np.isfinite(base) else 0.0)
                limits = np.array([t.limit_ms for t in obj.targets])
                over = np.nan_to_num(told.lat_ms[rest] / limits, nan=2.0).max(axis=1)
                reward[rest] = floor / np.maximum(over, 1.0) ** p["penalty"]
                use |= rest
        if use.any():
            with _one_thread():
                ctl = self._controller(ctx, state)
                self._update(ctl, state, p, tokens[use], reward[use])
                state["weights"] = _flat(ctl.parameters())
        return None

    def _update(self, ctl: Controller, state: dict, p: dict, tokens: np.ndarray, reward: np.ndarray) -> None:
        base = state["baseline"][0]
        base = reward.mean() if not np.isfinite(base) else base
        adv = reward - base
        state["baseline"][0] = p["baseline_decay"] * base + (1 - p["baseline_decay"]) * reward.mean()
        if p["algorithm"] == "ppo":
            adv = adv / (adv.std() + 1e-8)
        adv_t = torch.from_numpy(adv).float()
        params = list(ctl.parameters())
        with torch.no_grad():
            old_logp = ctl.log_prob(tokens)[0]
        epochs = p["ppo_epochs"] if p["algorithm"] == "ppo" else 1
        for _ in range(epochs):
            logp, ent = ctl.log_prob(tokens)
            if p["algorithm"] == "ppo":
                ratio = torch.exp(logp - old_logp)
                surrogate = torch.minimum(ratio * adv_t, torch.clamp(ratio, 1 - p["clip"], 1 + p["clip"]) * adv_t)
            else:
                surrogate = logp * adv_t
            loss = -surrogate.mean() - p["entropy"] * ent.mean()
            grads = torch.autograd.grad(loss, params)
            self._adam(params, grads, state, p["lr"])

    def _adam(self, params, grads, state, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        """Adam with its moments in the (checkpointed) strategy state."""
        g = torch.cat([x.reshape(-1) for x in grads]).double().numpy()
        state["adam_t"][0] += 1
        t = state["adam_t"][0]
        state["adam_m"] = b1 * state["adam_m"] + (1 - b1) * g
        state["adam_v"] = b2 * state["adam_v"] + (1 - b2) * g * g
        m_hat = state["adam_m"] / (1 - b1 ** t)
        v_hat = state["adam_v"] / (1 - b2 ** t)
        w = _flat(params) - lr * m_hat / (np.sqrt(v_hat) + eps)
        _load_flat(params, w)
