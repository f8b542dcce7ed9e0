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
moments are plain arrays in the strategy state, so a resumed search continues exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from search_spaces.errors import UserError

from .base import Strategy, allowed
from .registry import register_strategy

MAX_EMPTY_STEPS = 200


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

    def __init__(self, batch_size: int = 64, hidden: int = 64, lr: float = 0.005, algorithm: str = "ppo",
                 ppo_epochs: int = 4, clip: float = 0.2, entropy: float = 0.02, baseline_decay: float = 0.9,
                 pool: int = 2, penalty: float = 1.0, constraint: str = "reject", init_seed: int = 0):
        if algorithm not in ("ppo", "reinforce"):
            raise UserError(f"rl algorithm must be ppo or reinforce, got {algorithm!r}")
        self.batch_size = int(batch_size)
        self.hidden = int(hidden)
        self.lr = float(lr)
        self.algorithm = algorithm
        self.ppo_epochs = int(ppo_epochs)
        self.clip = float(clip)
        self.entropy = float(entropy)
        self.baseline_decay = float(baseline_decay)
        self.pool = max(1, int(pool))
        self.penalty = float(penalty)
        if constraint not in ("reject", "penalty"):
            raise UserError(f"rl constraint handling must be reject or penalty, got {constraint!r}")
        self.constraint = constraint
        self.init_seed = int(init_seed)

    # ---- state <-> controller -------------------------------------------------------------
    def _controller(self, space, state) -> Controller:
        """The controller holding the state's weights (initialised from ``init_seed`` at start)."""
        n_choices = [int(c) for c in space._search_table[0]]
        ctl = getattr(self, "_ctl", None)
        if ctl is None or ctl.n_choices != n_choices:
            with torch.random.fork_rng():  # leave the caller's torch RNG untouched
                torch.manual_seed(self.init_seed)
                ctl = self._ctl = Controller(n_choices, self.hidden)
        if "weights" in state:
            _load_flat(ctl.parameters(), state["weights"])
        return ctl

    def start(self, space, objective, rng, budget):
        ctl = self._controller(space, {})
        w = _flat(ctl.parameters())
        return {"weights": w, "adam_m": np.zeros_like(w), "adam_v": np.zeros_like(w),
                "adam_t": np.zeros(1), "baseline": np.full(1, np.nan), "empty_steps": np.zeros(1)}

    def step(self, state, space, objective, rng, remaining):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a 64-unit LSTM: threads only add hand-off cost
        try:
            return self._step(state, space, objective, rng, remaining)
        finally:
            torch.set_num_threads(threads)

    def _step(self, state, space, objective, rng, remaining):
        ctl = self._controller(space, state)
        if objective.constrained() and self.constraint == "reject":
            return self._step_reject(ctl, state, space, objective, rng, remaining)
        # Sample a pool; up to batch_size of its admissible archs get an accuracy evaluation.
        # Over-budget samples cost no evaluation but still teach the controller (pessimistic
        # reward); admissible samples past the batch are dropped from the update.
        tokens = ctl.sample(self.batch_size * self.pool, rng)
        counts, table = space._search_table
        X = space.canonical(table[np.arange(len(counts)), tokens])
        lat = objective.latency(X)
        ok = allowed(objective, lat)
        idx = np.flatnonzero(ok)[:min(remaining, self.batch_size)]
        used = np.union1d(idx, np.flatnonzero(~ok))
        tokens_used = tokens[used]
        reward = np.zeros(len(X))
        ev = None
        if len(idx):
            ev = objective.evaluate(X[idx], lat[idx])
            reward[idx] = ev.score if not objective.constrained() else ev.acc
            state["empty_steps"][0] = 0
        else:
            state["empty_steps"][0] += 1
            if state["empty_steps"][0] >= MAX_EMPTY_STEPS:
                raise UserError(f"the RL controller sampled no arch within the budget in {MAX_EMPTY_STEPS} steps")
        rest = np.flatnonzero(~ok)
        if len(rest):
            floor = reward[idx].min() if len(idx) else (state["baseline"][0] if np.isfinite(state["baseline"][0])
                                                         else 0.0)
            limits = np.array([t.limit_ms for t in objective.targets])
            over = np.nan_to_num(lat[rest] / limits, nan=2.0).max(axis=1)
            reward[rest] = floor / np.maximum(over, 1.0) ** self.penalty
        self._update(ctl, state, tokens_used, reward[used])
        state["weights"] = _flat(ctl.parameters())
        if ev is None:
            return X[:0], objective.evaluate(X[:0], lat[:0])
        return X[idx], ev

    def _step_reject(self, ctl, state, space, objective, rng, remaining):
        """Constraint-aware sampling from the policy: only admissible samples are kept and scored.

        The policy gradient then runs over the admissible part of the policy (the same rejection
        Once-for-All's evolution and our random search use), so no evaluation is spent over budget
        and no arbitrary penalty decides how close to the budget the controller dares to go.
        """
        need = min(remaining, self.batch_size)
        counts, table = space._search_table
        toks, xs, lats, got = [], [], [], 0
        for _ in range(MAX_EMPTY_STEPS):
            tokens = ctl.sample(self.batch_size * self.pool, rng)
            X = space.canonical(table[np.arange(len(counts)), tokens])
            lat = objective.latency(X)
            ok = allowed(objective, lat)
            toks.append(tokens[ok])
            xs.append(X[ok])
            lats.append(lat[ok])
            got += int(ok.sum())
            if got >= need:
                break
        if got == 0:
            raise UserError(f"the RL controller sampled no arch within the budget in {MAX_EMPTY_STEPS} tries")
        tokens, X, lat = (np.concatenate(a)[:need] for a in (toks, xs, lats))
        ev = objective.evaluate(X, lat)
        self._update(ctl, state, tokens, ev.acc)
        state["weights"] = _flat(ctl.parameters())
        return X, ev

    def _update(self, ctl: Controller, state: dict, tokens: np.ndarray, reward: np.ndarray) -> None:
        base = state["baseline"][0]
        base = reward.mean() if not np.isfinite(base) else base
        adv = reward - base
        state["baseline"][0] = self.baseline_decay * base + (1 - self.baseline_decay) * reward.mean()
        if self.algorithm == "ppo":
            adv = adv / (adv.std() + 1e-8)
        adv_t = torch.from_numpy(adv).float()
        params = list(ctl.parameters())
        with torch.no_grad():
            old_logp = ctl.log_prob(tokens)[0]
        epochs = self.ppo_epochs if self.algorithm == "ppo" else 1
        for _ in range(epochs):
            logp, ent = ctl.log_prob(tokens)
            if self.algorithm == "ppo":
                ratio = torch.exp(logp - old_logp)
                surrogate = torch.minimum(ratio * adv_t, torch.clamp(ratio, 1 - self.clip, 1 + self.clip) * adv_t)
            else:
                surrogate = logp * adv_t
            loss = -surrogate.mean() - self.entropy * ent.mean()
            grads = torch.autograd.grad(loss, params)
            self._adam(params, grads, state)

    def _adam(self, params, grads, state, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        """Adam with its moments in the (checkpointed) strategy state."""
        g = torch.cat([x.reshape(-1) for x in grads]).double().numpy()
        state["adam_t"][0] += 1
        t = state["adam_t"][0]
        state["adam_m"] = b1 * state["adam_m"] + (1 - b1) * g
        state["adam_v"] = b2 * state["adam_v"] + (1 - b2) * g * g
        m_hat = state["adam_m"] / (1 - b1 ** t)
        v_hat = state["adam_v"] / (1 - b2 ** t)
        w = _flat(params) - self.lr * m_hat / (np.sqrt(v_hat) + eps)
        _load_flat(params, w)
