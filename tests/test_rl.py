"""MnasNet's RL controller: reward shapes, ordering of results, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import nas
from nas.strategies.rl import Controller
from search_spaces import get_space


def test_controller_samples_every_dim_and_scores_its_samples():
    sp = get_space("ofa")
    ctl = Controller([len(d.searched) for d in sp.dims], hidden=16)
    tokens = ctl.sample(32, np.random.default_rng(0))
    assert tokens.shape == (32, len(sp.dims))
    assert (tokens >= 0).all() and (tokens < np.array([len(d.searched) for d in sp.dims])).all()
    logp, ent = ctl.log_prob(tokens)
    assert logp.shape == (32,) and bool((logp < 0).all())
    # an untrained controller is close to uniform: mean entropy near the mean log(#choices)
    uniform = np.mean([np.log(len(d.searched)) for d in sp.dims])
    assert abs(float(ent.detach().mean()) - uniform) < 0.1


@pytest.mark.parametrize("algorithm", ["ppo", "reinforce"])
def test_policy_gradient_learns_a_preference(algorithm):
    """Rewarding depth must shift the controller's samples towards deep stages within a few steps."""
    sp = get_space("ofa")
    batch_means = []

    class Deep:
        def predict(self, X):
            depth = sp.active_slots(X).sum(axis=1) / 20.0
            batch_means.append(depth.mean())
            return depth

    class Free:
        name = "free"

        def predict(self, X):
            return np.ones(len(X))

    nas.search(sp, Free(), 10, accuracy=Deep(), strategy="rl", budget=64 * 30, seed=0,
               strategy_params={"batch_size": 64, "algorithm": algorithm})
    assert len(batch_means) == 30
    # uniform depth {2,3,4} per stage: 3/4 of the 20 slots on average at the start
    assert abs(batch_means[0] - 0.75) < 0.05
    assert np.mean(batch_means[-5:]) > 0.9


@pytest.mark.parametrize("algorithm", ["ppo", "reinforce"])
def test_hard_mnas_reward_keeps_results_under_their_targets_in_order(algorithm):
    lats = []
    for target_ms in (40, 55, 70):
        res = nas.search("ofa", "pixel", target_ms, strategy="rl", reward="mnas-hard", budget=1280, seed=0,
                         strategy_params={"algorithm": algorithm})
        lat = res.best.latency_ms["pixel1"]
        assert lat <= target_ms
        lats.append(lat)
    assert lats[0] < lats[1] < lats[2]


def test_soft_reward_exponent_sets_the_tradeoff():
    """MnasNet: with the soft reward the exponent w, not T, moves the result along the front."""
    mild = nas.search("ofa", "pixel", 50, strategy="rl", reward="mnas", w=-0.07, budget=1920, seed=1).best
    steep = nas.search("ofa", "pixel", 50, strategy="rl", reward="mnas", w=-0.15, budget=1920, seed=1).best
    assert steep.latency_ms["pixel1"] < mild.latency_ms["pixel1"]


@pytest.mark.parametrize("args, needle", [
    (("--reward", "banana"), "unknown reward 'banana'"),
    (("--reward", "mnas", "--w", "0"), "negative exponent"),
    (("--param", "algorithm=a2c"), "ppo or reinforce"),
])
def test_bad_rl_input_is_one_line(tmp_path, nas_cli, args, needle):
    code, _, err = nas_cli("search", "--latency", "60ms", "--strategy", "rl", *args, "--quiet",
                           "--out", tmp_path / "r")
    assert code == 2 and needle in err and err.count("\n") == 1
