"""``supernet:CKPT``: measured top-1, the per-arch cache, eval-subnets -> fit-predictor, finetune, bad input.

A small, randomly initialised ``ofa-small`` supernet and a small slice of scikit-learn's digits
keep these fast; what is checked is mechanics (equal numbers by two paths, no re-measurement,
files that load), not accuracy levels.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from search_spaces import get_space
from search_spaces.errors import UserError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(supernet folder, data .npz with 10 classes, data .npz with 3 classes)."""
    from sklearn.datasets import load_digits

    from nas.checkpoints import save_supernet

    root = tmp_path_factory.mktemp("sn")
    torch.manual_seed(0)
    save_supernet(get_space("ofa-small").supernet(), root / "supernet.pt")
    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[:12] for c in range(10)])
    np.savez(root / "d10.npz", images=d.images[keep] / 16.0, labels=d.target[keep])
    three = keep[d.target[keep] < 3]
    np.savez(root / "d3.npz", images=d.images[three] / 16.0, labels=d.target[three])
    return root


def _one_line_exit2(code, err):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_in_supernet_measurement_equals_the_extracted_static_subnet(small):
    from nas.accuracy import get_estimator
    from nas.accuracy.supernet import measure_extracted

    sp = get_space("ofa-small")
    est = get_estimator(f"supernet:{small},data={small / 'd10.npz'}", sp)
    assert est.cost_s > 0  # declares itself expensive
    assert "measured on" in est.source and f"{est.data.n_held_out} held-out images" in est.source
    X = sp.sample_encoded(np.random.default_rng(0), 6)
    acc = est.predict(X)
    ref = measure_extracted(est.net, est.data, sp.decode(X))
    np.testing.assert_allclose(acc, ref, atol=1.0 / est.data.n_held_out + 1e-9)
    assert ((acc >= 0) & (acc <= 1)).all()


def test_cache_in_the_run_folder_means_no_arch_is_measured_twice(small, tmp_path):
    from nas.accuracy import get_estimator

    sp = get_space("ofa-small")
    spec = f"supernet:{small},data={small / 'd10.npz'}"
    X = sp.sample_encoded(np.random.default_rng(1), 5)
    a = get_estimator(spec, sp)
    a.use_run_dir(tmp_path)
    first = a.predict(X)
    assert a.n_measured == 5
    a.predict(X[:3])
    assert a.n_measured == 5  # repeated archs come from the cache
    b = get_estimator(spec, sp)  # as after a kill: a new process, same run folder
    b.use_run_dir(tmp_path)
    np.testing.assert_array_equal(b.predict(X), first)
    assert b.n_measured == 0
    other = get_estimator(f"supernet:{small},data={small / 'd10.npz'},calib=16", sp)
    with pytest.raises(UserError, match="another supernet or data"):
        other.use_run_dir(tmp_path)


def test_search_on_measured_accuracy_resumes_without_remeasuring(small, tmp_path, nas_cli):
    out = tmp_path / "run"
    args = ["search", "--space", "ofa-small", "--accuracy", f"supernet:{small}", "--data", small / "d10.npz",
            "--target", "pixel", "--latency", "5ms", "--budget", "12", "--out", out, "--no-plot", "--quiet", "--json"]
    code, stdout, err = nas_cli(*args)
    assert code == 0, err
    res = json.loads(stdout)
    assert "measured on" in res["accuracy"]["source"]
    # what the number is, in the estimator's own words: not ImageNet, not "the user's estimator"
    assert res["accuracy"]["metric"].startswith("top-1 (fraction)") and "d10.npz" in res["accuracy"]["metric"]
    cache = json.loads((out / "supernet_accuracy.json").read_text())
    assert len(cache["rows"]) >= 1
    code, stdout2, err = nas_cli("search", "--resume", out, "--no-plot", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(stdout2)["best"] == res["best"]


def test_eval_subnets_then_fit_predictor_then_search_on_it(small, tmp_path, nas_cli):
    pairs = tmp_path / "pairs.csv"
    code, out, err = nas_cli("eval-subnets", "--ckpt", small, "--data", small / "d10.npz", "--n", "16",
                             "--target", "pixel", "--out", pairs, "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(pairs.open()))
    assert len(rows) == 16 and {"arch", "top1", "macs", "params", "latency_ms_pixel1"} <= set(rows[0])
    assert len({r["arch"] for r in rows}) == 16
    code, out, err = nas_cli("fit-predictor", "--space", "ofa-small", "--data", pairs, "--out", tmp_path / "p.json",
                             "--kind", "gbr")
    assert code == 0, err
    assert "Spearman" in out
    code, out, err = nas_cli("search", "--space", "ofa-small", "--accuracy", f"predictor:{tmp_path / 'p.json'}",
                             "--target", "pixel", "--latency", "5ms", "--budget", "50", "--out", tmp_path / "s",
                             "--no-plot", "--quiet")
    assert code == 0, err
    # the search's pick, measured with the supernet (the predictor-vs-direct comparison)
    code, out, err = nas_cli("eval-subnets", "--ckpt", small, "--data", small / "d10.npz", "--arch", tmp_path / "s",
                             "--out", tmp_path / "found.csv", "--quiet", "--workers", "1")
    assert code == 0, err
    found = list(csv.DictReader((tmp_path / "found.csv").open()))
    best = json.loads((tmp_path / "s" / "result.json").read_text())["best"]["arch"]
    sp = get_space("ofa-small")
    assert len(found) == 1
    assert (sp.canonical(sp.encode([json.loads(found[0]["arch"])])) == sp.canonical(sp.encode([best]))).all()
    code, _, err = nas_cli("eval-subnets", "--ckpt", small, "--data", small / "d10.npz", "--n", "3", "--out", pairs)
    _one_line_exit2(code, err)  # never writes over earlier results


def test_search_on_a_predictor_then_its_top_k_measured_with_the_supernet(small, tmp_path, nas_cli):
    """--verify-accuracy: the predictor's top-k measured with the supernet, re-ranked, best = best measured."""
    pairs = tmp_path / "pairs.csv"
    assert nas_cli("eval-subnets", "--ckpt", small, "--data", small / "d10.npz", "--n", "16", "--out", pairs,
                   "--quiet", "--workers", "1")[0] == 0
    assert nas_cli("fit-predictor", "--space", "ofa-small", "--data", pairs, "--out", tmp_path / "p.json",
                   "--kind", "gbr")[0] == 0
    code, out, err = nas_cli("search", "--space", "ofa-small", "--accuracy", f"predictor:{tmp_path / 'p.json'}",
                             "--verify-accuracy", f"supernet:{small},workers=1", "--data", small / "d10.npz",
                             "--top-k", "6", "--strategy", "random", "--target", "pixel", "--latency", "5ms",
                             "--budget", "200", "--out", tmp_path / "s", "--no-plot", "--json")
    assert code == 0, err
    res = json.loads(out)
    measured = [s["measured_top1"] for s in res["top_k"]]
    assert len(measured) == 6 and measured == sorted(measured, reverse=True)
    assert res["best"] == res["top_k"][0] and res["cost"]["verification_evaluations"] == 6
    assert res["verified_accuracy"]["n"] == 6 and "--verify-accuracy" in res["notes"][-1]
    # the same numbers as measuring those archs on their own
    code, _, err = nas_cli("eval-subnets", "--ckpt", small, "--data", small / "d10.npz", "--arch", tmp_path / "s",
                           "--top", "6", "--out", tmp_path / "found.csv", "--quiet", "--workers", "1")
    assert code == 0, err
    found = [float(r["top1"]) for r in csv.DictReader((tmp_path / "found.csv").open())]
    assert found == pytest.approx(measured, abs=1e-6)
    best_file = json.loads((tmp_path / "s" / "best_arch.json").read_text())
    sp = get_space("ofa-small")
    assert (sp.encode([best_file["arch"]]) == sp.encode([res["best"]["arch"]])).all()
    # --data without a supernet to measure with is refused
    code, _, err = nas_cli("search", "--space", "ofa-small", "--accuracy", f"predictor:{tmp_path / 'p.json'}",
                           "--data", small / "d10.npz", "--target", "pixel", "--latency", "5ms",
                           "--out", tmp_path / "x")
    _one_line_exit2(code, err)
    assert "--verify-accuracy supernet:CKPT" in err and not (tmp_path / "x").exists()


def test_finetune_keeps_or_improves_and_exports_onnx_that_runs(small, tmp_path, nas_cli):
    import onnxruntime as ort

    sp = get_space("ofa-small")
    arch = sp.decode(sp.sample_encoded(np.random.default_rng(3), 1))[0]
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    code, out, err = nas_cli("finetune", tmp_path / "arch.json", "--ckpt", small, "--data", small / "d10.npz",
                             "--epochs", "1", "--lr", "0.05", "--out", tmp_path / "ft", "--quiet", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["held_out_top1"] >= r["held_out_top1_inherited"]
    assert abs(r["held_out_top1_onnxruntime"] - r["held_out_top1"]) < 1e-9
    sess = ort.InferenceSession(str(tmp_path / "ft" / "model.onnx"), providers=["CPUExecutionProvider"])
    res = arch["r"][0]
    y = sess.run(None, {"input": np.zeros((1, 3, res, res), np.float32)})[0]
    assert y.shape == (1, 10)
    pt = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)
    assert pt["arch"] == sp.validate(arch)


def test_bad_input_is_one_line_and_exit_2(small, tmp_path, nas_cli):
    from nas.checkpoints import save_supernet
    from nas.train.checkpoint import save_training_state

    base = ["search", "--space", "ofa-small", "--target", "pixel", "--latency", "5ms", "--budget", "4",
            "--no-plot", "--quiet"]
    # a checkpoint of another space
    save_supernet(get_space("ofa-w1.0").supernet(), tmp_path / "w10.pt")
    code, _, err = nas_cli(*base, "--accuracy", f"supernet:{tmp_path / 'w10.pt'}", "--data", small / "d10.npz",
                           "--out", tmp_path / "a")
    _one_line_exit2(code, err)
    assert "ofa-w1.0" in err
    # corrupt and truncated files
    good = (small / "supernet.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 3])
    (tmp_path / "junk.pt").write_bytes(b"\x00junk" * 100)
    for f in ("trunc.pt", "junk.pt"):
        code, _, err = nas_cli(*base, "--accuracy", f"supernet:{tmp_path / f}", "--data", small / "d10.npz",
                               "--out", tmp_path / f"b{f}")
        _one_line_exit2(code, err)
        assert "not a readable checkpoint" in err
    # data with another number of classes
    code, _, err = nas_cli(*base, "--accuracy", f"supernet:{small}", "--data", small / "d3.npz", "--out", tmp_path / "c")
    _one_line_exit2(code, err)
    assert "3 classes" in err
    # data whose class names differ from those the run trained on
    run = tmp_path / "run"
    run.mkdir()
    net = get_space("ofa-small").supernet()
    save_supernet(net, run / "supernet.pt")
    save_training_state({"config": {"held_out": 0.2, "seed": 0, "data": "digits"}, "space": "ofa-small",
                         "space_params": net.space.space_params(), "classes": [f"c{i}" for i in range(10)],
                         "supernet": net.state_dict()}, run / "checkpoint.pt")
    code, _, err = nas_cli(*base, "--accuracy", f"supernet:{run}", "--data", small / "d10.npz", "--out", tmp_path / "d")
    _one_line_exit2(code, err)
    assert "was trained on" in err
    # --data without a supernet estimator
    code, _, err = nas_cli(*base, "--data", "digits", "--out", tmp_path / "e")
    _one_line_exit2(code, err)


def test_meter_logits_equal_the_extracted_subnet_with_or_without_workers(small):
    """Stem features shared across archs, BatchNorm folding, worker processes: same function."""
    from search_spaces.ofa.supernet import recalibrate_bn

    from nas.accuracy.supernet import HeldOutData, SubnetMeter, load_trained_supernet, measure_extracted

    ts = load_trained_supernet(str(small))
    data = HeldOutData(str(small / "d10.npz"), ts)
    sp = ts.net.space
    archs = sp.decode(sp.sample_encoded(np.random.default_rng(5), 6))
    archs[0]["r"] = [sp.search_resolutions[0]]
    archs[1]["r"] = [sp.search_resolutions[-1]]
    meter = SubnetMeter(ts.net, data, workers=2)
    pooled = meter.measure(archs)  # forks workers; builds the shared features first
    meter.close()
    assert pooled.tolist() == SubnetMeter(ts.net, data).measure(archs).tolist()
    np.testing.assert_allclose(pooled, measure_extracted(ts.net, data, archs), atol=1.0 / data.n_held_out + 1e-9)
    for arch in archs[:3]:
        cal, held = data.at(int(arch["r"][0]))
        sub = recalibrate_bn(ts.net.extract(arch), [cal]).eval()
        with torch.no_grad():
            want = sub(held)
        got = meter.held_out_logits(arch)
        assert torch.allclose(got, want, atol=1e-3 * float(want.abs().max()), rtol=0)  # folding rounds
