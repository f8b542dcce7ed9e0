"""The main job: `nas search` and `nas.search` — constraints, estimators, strategies, resume, errors."""

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

import nas
from nas.accuracy.ofa_predictor import OFAAccuracyPredictor
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ofa_acc(shared_data):
    return shared_data / "ofa" / "acc_predictor.pth"


def test_default_search_meets_and_uses_the_budget(tmp_path):
    res = nas.search(space="ofa", target="pixel", latency_ms=80, budget=4000, seed=0, out=tmp_path / "run")
    assert res.best is not None
    lat = res.best.latency_ms["pixel1"]
    # An estimator that ranks nets of equal size need not fill the budget: the released Once-for-All
    # predictor's own pick at 80 ms on pixel1 takes 67 ms (issue 16). What must hold is that nothing the
    # search saw within the budget scores higher than its pick, and that the pick is not a small net.
    assert 0.8 * 80 <= lat <= 80
    assert all(s.latency_ms["pixel1"] <= 80 for s in res.top_k)
    assert res.best.top1 == max(s.top1 for s in res.top_k)
    assert all(s.top1 <= res.best.top1 for s in res.pareto if s.latency_ms["pixel1"] <= 80)
    # the ofa space's default is the shipped model distilled from Once-for-All's predictor, and says so
    assert res.accuracy["name"] == "shipped" and any("distilled from Once-for-All" in n for n in res.notes)
    assert res.targets[0].latency_source.startswith("modelled")
    for name in ("result.json", "search.png", "config.json", "checkpoint.npz"):
        assert (tmp_path / "run" / name).is_file()
    again = nas.load_result(tmp_path / "run")
    assert again.best.arch == res.best.arch
    # the reported figures are the predictors' own
    sp = get_space("ofa")
    X = sp.encode([res.best.arch])
    assert nas.predict_latency_ms("ofa", "pixel1", X)[0] == pytest.approx(lat)
    assert sp.macs(X)[0] == res.best.macs


def test_pareto_front_is_non_dominated(tmp_path):
    res = nas.search(space="ofa", target="pixel", latency_ms=60, budget=2000, seed=1)
    pts = [(s.latency_ms["pixel1"], s.top1) for s in res.pareto]
    assert len(pts) > 5
    for lat, acc in pts:
        assert not any(l2 <= lat and a2 >= acc and (l2, a2) != (lat, acc) for l2, a2 in pts)


def test_ofa_predictor_reproduces_reference(shared_data, ofa_acc):
    recs = json.loads((shared_data / "ofa" / "reference_predictions.json").read_text())["records"]
    est = nas.get_estimator(f"ofa-predictor:{ofa_acc}", "ofa")
    sp = get_space("ofa")
    X = sp.encode([r["arch"] for r in recs])
    np.testing.assert_allclose(est.features(X), [r["ofa_features_128"] for r in recs], atol=0)
    np.testing.assert_allclose(est.predict(X), [r["ofa_acc_predictor"] for r in recs], atol=1e-5, rtol=0)


def test_evolution_beats_random_at_equal_budget(note10, ofa_acc):
    acc = OFAAccuracyPredictor(get_space("ofa"), ofa_acc)
    evo = [nas.search("ofa", note10, 25, accuracy=acc, strategy="evolution", budget=3000, seed=s).best.top1
           for s in (1, 2, 3)]
    rnd = [nas.search("ofa", note10, 25, accuracy=acc, strategy="random", budget=3000, seed=s).best.top1
           for s in (1, 2, 3)]
    assert np.median(evo) > np.median(rnd)


def test_imported_table_search_stays_on_priced_resolutions(note10, ofa_acc):
    res = nas.search("ofa", note10, "25ms", accuracy=f"ofa-predictor:{ofa_acc}", budget=2000, seed=0)
    assert res.best.arch["r"][0] in (160, 176, 192, 208, 224)
    assert res.best.latency_ms["note10"] <= 25


def test_several_targets_at_once(note10):
    res = nas.search("ofa", ["pixel", note10], ["70ms", "20ms"], budget=2000, seed=0)
    assert res.best.latency_ms["pixel1"] <= 70 and res.best.latency_ms["note10"] <= 20
    assert [t.device for t in res.targets] == ["pixel1", "note10"]


def test_latency_margin_tightens_the_limit():
    res = nas.search("ofa", "pixel", 80, latency_margin=0.1, budget=2000, seed=0)
    assert res.targets[0].limit_ms == pytest.approx(72)
    assert res.best.latency_ms["pixel1"] <= 72


def test_soft_mnas_reward_trades_accuracy_for_latency():
    mild = nas.search("ofa", "pixel", 60, reward="mnas", w=-0.07, budget=3000, seed=0).best
    steep = nas.search("ofa", "pixel", 60, reward="mnas", w=-0.5, budget=3000, seed=0).best
    assert steep.latency_ms["pixel1"] < mild.latency_ms["pixel1"]


def test_objects_stand_in_for_estimators_and_devices():
    sp = get_space("ofa")

    class MacsLatency:
        name = "macs-device"

        def predict(self, X):
            return sp.macs(X) / 1e7  # 1 ms per 10M MACs

    class DeeperIsBetter:
        def predict(self, X):
            return sp.active_slots(X).sum(axis=1) / 20.0

    res = nas.search(sp, MacsLatency(), 30, accuracy=DeeperIsBetter(), budget=2000, seed=0)
    assert res.best.latency_ms["macs-device"] <= 30
    assert sum(res.best.arch["d"]) >= 15


def test_same_seed_same_result():
    a = nas.search("ofa", "pixel", 50, budget=1500, seed=7)
    b = nas.search("ofa", "pixel", 50, budget=1500, seed=7)
    assert a.best.arch == b.best.arch and a.history == b.history


def _strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("wall_time_s", "created")}


@pytest.mark.parametrize("strategy, budget", [("evolution", 4000), ("random", 10000), ("rl", 1500)])
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, nas_cli, strategy, budget):
    """A search killed with SIGKILL mid-way and resumed gives the uninterrupted run's result."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    params = {"batch_size": 200} if strategy == "random" else {}
    script = (
        "import sys, time, nas\n"
        f"nas.search(space='ofa', target='pixel', latency_ms=70, budget={budget}, seed=3, out=sys.argv[1],\n"
        f"           strategy='{strategy}', strategy_params={params!r},\n"
        "           callbacks=[lambda info: time.sleep(0.08)], plot=False)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], env=env)
    deadline = time.time() + 120
    ckpt = killed / "checkpoint.npz"
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    time.sleep(1.2)  # let it get past the first checkpoint
    assert proc.poll() is None, "search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists()
    code, _, err = nas_cli("search", "--resume", killed, "--quiet", "--no-plot")
    assert code == 0, err
    extra = ["--param", "batch_size=200"] if strategy == "random" else []
    code, _, err = nas_cli("search", "--space", "ofa", "--target", "pixel", "--latency", "70ms", "--strategy",
                           strategy, *extra, "--budget", budget, "--seed", "3", "--out", clean, "--quiet",
                           "--no-plot")
    assert code == 0, err
    resumed = json.loads((killed / "result.json").read_text())
    uninterrupted = json.loads((clean / "result.json").read_text())
    assert _strip(resumed) == _strip(uninterrupted)


def test_cli_prints_table_and_exports(tmp_path, nas_cli):
    code, out, err = nas_cli("search", "--space", "ofa", "--target", "pixel", "--latency", "80 ms",
                             "--budget", "1000", "--out", tmp_path / "r", "--export", "onnx", "--quiet")
    assert code == 0, err
    assert "top-1 %" in out and "pixel1 ms" in out and "best arch:" in out
    assert "distilled from Once-for-All's released accuracy predictor" in out  # where top-1 comes from
    assert (tmp_path / "r" / "best.onnx").stat().st_size > 1e6
    code, out, err = nas_cli("search", "--target", "pixel", "--latency", "0.08s", "--budget", "500",
                             "--out", tmp_path / "j", "--json")
    assert code == 0, err
    assert json.loads(out)["best"]["latency_ms"]["pixel1"] <= 80


def test_existing_run_folder_is_not_overwritten(tmp_path, nas_cli):
    args = ("search", "--latency", "80ms", "--budget", "300", "--out", tmp_path / "r", "--quiet", "--no-plot")
    assert nas_cli(*args)[0] == 0
    code, _, err = nas_cli(*args)
    assert code == 2 and "--resume" in err


@pytest.mark.parametrize("args, needle", [
    (("--space", "nope", "--latency", "80ms"), "unknown search space 'nope'; known:"),
    (("--target", "pixel9", "--latency", "80ms"), "pixel9"),
    (("--latency", "80 parsecs"), "80 parsecs"),
    (("--latency", "1ms"), "smallest achievable is"),
    (("--latency", "80ms", "--accuracy", "ofa-predictor:/nonexistent.pth"), "does not exist"),
    (("--latency", "80ms", "--accuracy", "nope"), "unknown accuracy estimator"),
    (("--latency", "80ms", "--verify-accuracy", "supernet:/nonexistent"), "does not exist"),
    (("--latency", "80ms", "--strategy", "nope"), "unknown strategy 'nope'; known:"),
    (("--latency", "80ms", "--reward", "nope"), "unknown reward"),
    (("--latency", "80ms", "--reward", "mnas", "--w", "0.1"), "negative exponent"),
    (("--latency", "80ms", "--budget", "0"), "budget: must be >= 1, got 0"),
    (("--latency", "80ms", "--param", "population"), "KEY=VALUE"),
    (("--latency", "80ms", "--param", "colour=3"), "strategy 'evolution'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, nas_cli, args, needle):
    out_dir = tmp_path / "run"
    code, _, err = nas_cli("search", *args, "--out", out_dir, "--quiet")
    assert code == 2, err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_a_wrong_predictor_file_is_refused(tmp_path, nas_cli):
    bad = tmp_path / "acc.pth"
    bad.write_bytes(b"not a torch file")
    code, _, err = nas_cli("search", "--latency", "80ms", "--accuracy", f"ofa-predictor:{bad}", "--quiet",
                           "--out", tmp_path / "run")
    assert code == 2 and "not a readable" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
