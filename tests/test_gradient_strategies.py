"""DNAS, ProxylessNAS and Single-Path NAS: targets reached, exact resume after kill -9, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.gradient.pricing import bounds_ms, layer_costs, project
from nas.gradient.supernet import layer_specs
from nas.run import SearchGrid
from nas.search import make_target
from search_spaces import get_space
from search_spaces.errors import UserError

TINY = dict(epochs=2, warmup_epochs=1, finetune_epochs=0, steps_per_epoch=1, batch_size=16, width=0.125,
            image_size=8, head=16, threads=1)
NAS = str(Path(sys.executable).parent / "nas")
CASES = [("dnas", "fbnet"), ("proxyless", "proxyless"), ("single-path", "single_path")]


def _bounds(space: str):
    sp = get_space(space)
    grid = SearchGrid.of(sp)
    specs = layer_specs(sp, grid)
    t = make_target("x86", sp, 100)
    return bounds_ms(layer_costs(specs, grid, t.predictor.predict))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("strategy,space", CASES)
def test_three_targets_ordered_within_15_percent(strategy, space):
    lo, hi = _bounds(space)
    targets = [lo + f * (hi - lo) for f in (0.3, 0.55, 0.85)]
    got = []
    for T in targets:
        r = nas.search(space, "x86", T, strategy=strategy, strategy_params=TINY, seed=1)
        lat = r.best.latency_ms["x86-2core-ort"]
        assert 0.85 * T <= lat <= T, (T, lat)
        assert 0 <= r.best.top1 <= 1 and r.training["reached_target_by"]
        got.append(lat)
    assert got == sorted(got)


def test_projection_is_the_most_probable_arch_in_the_band():
    sp = get_space("proxyless")
    grid = SearchGrid.of(sp)
    specs = layer_specs(sp, grid)
    costs = layer_costs(specs, grid, make_target("x86", sp, 100).predictor.predict)
    rng = np.random.default_rng(0)
    P = np.where(costs.mask, rng.random(costs.mask.shape), 0)
    P /= P.sum(1, keepdims=True)
    lo, hi = bounds_ms(costs)
    T = lo + 0.5 * (hi - lo)
    ch = project(costs, P, T, 0.85)
    lat = costs.base_ms + costs.cost_ms[np.arange(len(ch)), ch].sum()
    assert 0.85 * T <= lat <= T
    # no single-layer change in the band is more probable (a necessary condition of optimality)
    logp = np.log(P[np.arange(len(ch)), ch]).sum()
    for i in range(len(ch)):
        for j in np.flatnonzero(costs.mask[i]):
            l2 = lat - costs.cost_ms[i, ch[i]] + costs.cost_ms[i, j]
            if 0.85 * T <= l2 <= T:
                assert np.log(P[i, j]) - np.log(P[i, ch[i]]) + logp <= logp + 1e-9


def _cli(*args, out):
    return [NAS, "search", "--space", "fbnet", "--target", "x86", "--latency", "1.5",
            "--strategy", "dnas", "--quiet", "--no-plot", "--out", str(out), *args]


@pytest.mark.filterwarnings("ignore")
def test_kill_9_then_resume_gives_the_same_arch_and_weights(tmp_path):
    params = []
    for k, v in {**TINY, "epochs": 3, "steps_per_epoch": 3, "finetune_epochs": 1, "checkpoint_steps": 1}.items():
        params += ["--param", f"{k}={v}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    full = subprocess.run(_cli(*params, out=tmp_path / "full"), env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    proc = subprocess.Popen(_cli(*params, out=tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    while not ckpt.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from nas.train.checkpoint import load_training_state

    assert not load_training_state(ckpt)["finished"]  # killed mid-run
    res = subprocess.run([NAS, "search", "--resume", str(tmp_path / "killed"), "--quiet",
                          "--no-plot"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    from nas.search import load_result

    assert load_result(tmp_path / "killed").best.arch == load_result(tmp_path / "full").best.arch
    w1 = torch.load(tmp_path / "full" / "supernet.pt", weights_only=True)["model"]
    w2 = torch.load(tmp_path / "killed" / "supernet.pt", weights_only=True)["model"]
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)


@pytest.mark.parametrize("args,needle", [
    (["--space", "ofa", "--strategy", "dnas", "--latency", "30"], "no layer-wise supernet"),
    (["--space", "fbnet", "--strategy", "single-path", "--latency", "3"], "superkernel"),
    (["--space", "fbnet", "--strategy", "dnas", "--latency", "0.01"], "smallest achievable"),
    (["--space", "fbnet", "--strategy", "dnas", "--latency", "3", "--param", "temperature=-1"], "temperature"),
    (["--space", "fbnet", "--strategy", "dnas", "--latency", "3", "--param", "temperature_decay=-0.1"],
     "temperature_decay"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    r = subprocess.run([NAS, "search", "--target", "x86", "--quiet", "--out",
                        str(tmp_path / "r"), *args], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_warmup_not_below_epochs_is_refused():
    with pytest.raises(UserError, match="warmup_epochs"):
        nas.get_strategy("dnas", epochs=2, warmup_epochs=2)
    with pytest.raises(UserError, match="largest_first_epochs"):
        nas.get_strategy("proxyless", epochs=4, warmup_epochs=1, largest_first_epochs=2)


@pytest.mark.parametrize("strategy,space", CASES)
def test_found_net_computes_the_supernet_path_with_its_weights(strategy, space):
    """The found net (what --export writes) is the chosen path of the supernet, weights included."""
    from nas.gradient.base import TrainJob

    sp = get_space(space)
    grid = SearchGrid.of(sp)
    specs = layer_specs(sp, grid)
    st = nas.get_strategy(strategy, **{**TINY, "width": 0.25, "image_size": 16})
    costs = layer_costs(specs, grid, make_target("x86", sp, 100).predictor.predict)
    job = TrainJob(specs, costs, 100.0, st.params(), 10)
    torch.manual_seed(0)
    job.model = st.supernet(job)
    with torch.no_grad():  # away from the zero-initialised residual scales, so every block matters
        for m in job.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.3)
                m.running_mean.normal_(0.0, 0.1)
    rng = np.random.default_rng(0)
    choice = np.array([rng.integers(len(s.positions)) for s in specs])
    if strategy == "single-path":  # a choice the superkernel can take: skip only where the layer has a shortcut
        choice = np.array([c if s.candidates[c] is not None or s.residual else 0 for s, c in zip(specs, choice)])
    found = st.found_net(job, choice).eval()
    job.model.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        want = st.forward(job, x, st.path(job, choice))
        got = found(x)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    n_blocks = sum(c is not None for s, c in zip(specs, [s.candidates[i] for s, i in zip(specs, choice)]))
    assert sum(not isinstance(b, torch.nn.Identity) for b in found.layers) == n_blocks


@pytest.mark.filterwarnings("ignore")
def test_export_writes_the_found_net_with_inherited_weights(tmp_path):
    from nas.gradient.found import load_found_net

    params = []
    for k, v in TINY.items():
        params += ["--param", f"{k}={v}"]
    out = tmp_path / "run"
    r = subprocess.run([NAS, "search", "--space", "proxyless", "--target", "x86", "--latency", "2.2",
                        "--strategy", "proxyless", "--quiet", "--no-plot", "--out", str(out), "--export", "pt",
                        *params], capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr[-2000:]
    net, info = load_found_net(out / "best.pt")
    sup = torch.load(out / "supernet.pt", weights_only=True)["model"]
    choice = info["choice"]
    for i, c in enumerate(choice):
        prefix = f"net.layers.{i}.{c}."
        for k, v in net.layers[i].state_dict().items():
            if k.endswith("weight") and "bn" not in k:  # conv weights: BN statistics are recalibrated
                assert torch.equal(v, sup[prefix + k]), (i, k)
    assert torch.equal(net.ends.classifier.weight, sup["net.ends.classifier.weight"])
    assert info["arch"] == json.loads((out / "best_arch.json").read_text())
