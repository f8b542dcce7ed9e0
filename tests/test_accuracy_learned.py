"""`predictor:PATH`: training on (arch, top-1) pairs, held-out Spearman, safe JSON save/load, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from nas.accuracy import get_estimator
from nas.accuracy.learned import LearnedPredictor, spearman
from search_spaces import get_space
from search_spaces.errors import UserError


def synthetic_top1(space, X: np.ndarray) -> np.ndarray:
    """A made-up but arch-dependent top-1 fraction: bigger nets better, plus per-choice effects."""
    m = np.log(space.macs(X))
    w = np.random.default_rng(7).normal(0, 0.004, space.features(X[:1]).shape[1])
    return 0.70 + 0.03 * (m - 19.5) + space.features(X) @ w


@pytest.fixture(scope="module")
def ofa():
    return get_space("ofa")


@pytest.fixture(scope="module")
def pairs(ofa):
    X = ofa.sample_encoded(np.random.default_rng(1), 400)
    return X, synthetic_top1(ofa, X)


def write_csv(path, space, X, y, column="top1", scale=100.0):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", column])
        for arch, v in zip(space.decode(X), y):
            w.writerow([json.dumps(arch), round(scale * float(v), 4)])
    return path


@pytest.mark.parametrize("kind", ["mlp", "gbr"])
def test_a_fitted_predictor_ranks_held_out_archs_and_round_trips_through_json(ofa, pairs, kind, tmp_path):
    X, y = pairs
    model = LearnedPredictor(ofa, kind=kind, n_trees=200).fit(X[:300], y[:300])
    pred = model.predict(X[300:])
    assert spearman(pred, y[300:]) > 0.8
    path = model.save(tmp_path / "model.json")
    loaded = get_estimator(f"predictor:{path}", ofa)
    assert isinstance(loaded, LearnedPredictor) and loaded.kind == kind
    np.testing.assert_allclose(loaded.predict(X[300:]), pred, atol=1e-6)
    assert json.loads(path.read_text())["format"] == "hwnas-accuracy-predictor"


def test_fit_predictor_cli_detects_percent_and_reports_held_out_spearman(ofa, pairs, nas_cli, tmp_path):
    X, y = pairs
    data = write_csv(tmp_path / "measured.csv", ofa, X, y)
    out = tmp_path / "acc.json"
    code, stdout, stderr = nas_cli("fit-predictor", "--space", "ofa", "--data", data, "--out", out, "--seed", "3")
    assert code == 0, stderr
    assert "percent" in stdout and "Spearman" in stdout
    meta = json.loads(out.read_text())["metadata"]
    assert meta["unit_detected"] == "percent" and meta["n_heldout"] == 80
    assert meta["heldout_spearman"] > 0.85
    model = LearnedPredictor.load(out, ofa)
    assert model.predict(X[:5]).max() <= 1.0 and "Spearman" in model.source


def test_fit_predictor_reads_json_fractions(ofa, pairs, nas_cli, tmp_path):
    X, y = pairs
    data = tmp_path / "measured.json"
    data.write_text(json.dumps([{"arch": a, "accuracy": float(v)} for a, v in zip(ofa.decode(X[:60]), y[:60])]))
    code, stdout, _ = nas_cli("fit-predictor", "--space", "ofa", "--data", data, "--out", tmp_path / "m.json",
                              "--kind", "gbr", "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["unit_detected"] == "fraction" and summary["column"] == "accuracy"


def _one_line_error(nas_cli, *argv):
    code, stdout, stderr = nas_cli("fit-predictor", *argv)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("nas fit-predictor: error:")
    return stderr


def test_bad_input_is_one_line_and_exit_2(ofa, pairs, nas_cli, tmp_path):
    X, y = pairs
    out = tmp_path / "m.json"
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,score\n{},0.5\n")
    assert "missing column(s) top1 (or accuracy)" in _one_line_error(
        nas_cli, "--space", "ofa", "--data", bad, "--out", out)
    assert "does not exist" in _one_line_error(
        nas_cli, "--space", "ofa", "--data", tmp_path / "nope.csv", "--out", out)
    assert "unknown search space" in _one_line_error(
        nas_cli, "--space", "nope", "--data", bad, "--out", out)
    wrong = write_csv(tmp_path / "wrong.csv", ofa, X[:20], y[:20])
    text = wrong.read_text().splitlines()
    text[3] = '"{""ks"": [9]}",75.0'
    wrong.write_text("\n".join(text) + "\n")
    assert "row 3" in _one_line_error(nas_cli, "--space", "ofa", "--data", wrong, "--out", out)
    binary = tmp_path / "data.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _one_line_error(nas_cli, "--space", "ofa", "--data", binary, "--out", out)
    assert not out.exists()


def test_an_ensemble_predicts_its_members_mean_and_round_trips_through_json(ofa, pairs, tmp_path):
    X, y = pairs
    a = LearnedPredictor(ofa, seed=0, hidden=(16,)).fit(X[:300], y[:300])
    b = LearnedPredictor(ofa, seed=1, hidden=(16,)).fit(X[:300], y[:300])
    b.y_mean_, b.y_scale_ = a.y_mean_, a.y_scale_  # same training targets, same standardisation
    both = LearnedPredictor.from_members(ofa, [a.layers_, b.layers_], a.y_mean_, a.y_scale_)
    pa, pb, pm = a.predict(X[300:]), b.predict(X[300:]), both.predict(X[300:])
    assert np.abs(pa - pb).max() > 1e-4  # the members differ, so the mean is not either one
    np.testing.assert_allclose(pm, (pa + pb) / 2, atol=1e-6)
    path = both.save(tmp_path / "ens.json")
    d = json.loads(path.read_text())
    assert d["mlp"]["combine"] == "mean" and len(d["mlp"]["members"]) == 2 and "layers" not in d["mlp"]
    np.testing.assert_allclose(get_estimator(f"predictor:{path}", ofa).predict(X[300:]), pm, atol=1e-6)
    # a single MLP keeps the original layout, so files written before ensembles still load
    assert "layers" in a.to_dict()["mlp"] and "members" not in a.to_dict()["mlp"]
    d["mlp"]["members"][1][0]["W"] = d["mlp"]["members"][1][0]["W"][:-3]
    path.write_text(json.dumps(d))
    with pytest.raises(UserError, match="corrupt"):
        LearnedPredictor.load(path, ofa)
    d["mlp"]["members"] = []
    path.write_text(json.dumps(d))
    with pytest.raises(UserError, match="corrupt"):
        LearnedPredictor.load(path, ofa)


def test_packed_weights_round_trip_and_old_list_files_still_load(ofa, pairs, tmp_path):
    X, y = pairs
    a = LearnedPredictor(ofa, seed=0, hidden=(16, 8)).fit(X[:300], y[:300])
    b = LearnedPredictor(ofa, seed=1, hidden=(16, 8)).fit(X[:300], y[:300])
    both = LearnedPredictor.from_members(ofa, [a.layers_, b.layers_], a.y_mean_, a.y_scale_)
    listed = both.save(tmp_path / "lists.json")
    packed = both.save(tmp_path / "packed.json", packed=True)
    d = json.loads(packed.read_text())
    W0 = d["mlp"]["members"][1][0]["W"]
    assert W0["dtype"] == "float32-le" and W0["shape"] == list(b.layers_[0][0].shape)
    # the bytes are the float32 weights themselves, little-endian
    import base64
    raw = np.frombuffer(base64.b64decode(W0["base64"]), dtype="<f4").reshape(W0["shape"])
    np.testing.assert_array_equal(raw, b.layers_[0][0].astype(np.float32))
    assert packed.stat().st_size < listed.stat().st_size / 2
    # float32 storage moves a prediction by far less than a top-1 point's hundredth
    np.testing.assert_allclose(get_estimator(f"predictor:{packed}", ofa).predict(X[300:]), both.predict(X[300:]),
                               atol=1e-5)
    np.testing.assert_allclose(get_estimator(f"predictor:{listed}", ofa).predict(X[300:]), both.predict(X[300:]),
                               atol=1e-9)
    for broken in ({**W0, "base64": W0["base64"][:-8]}, {**W0, "dtype": "float64"},
                   {**W0, "base64": "not base64!"}, {**W0, "shape": [3, -1]}):
        d["mlp"]["members"][1][0]["W"] = broken
        packed.write_text(json.dumps(d))
        with pytest.raises(UserError, match="corrupt"):
            LearnedPredictor.load(packed, ofa)


def test_loading_a_wrong_or_corrupt_file_is_a_user_error(ofa, pairs, tmp_path):
    X, y = pairs
    path = LearnedPredictor(ofa).fit(X[:100], y[:100]).save(tmp_path / "m.json")
    with pytest.raises(UserError, match="fitted for space 'ofa', not 'ofa-w1.0'"):
        get_estimator(f"predictor:{path}", "ofa-w1.0")
    with pytest.raises(UserError, match="does not exist"):
        LearnedPredictor.load(tmp_path / "missing.json", ofa)
    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    with pytest.raises(UserError, match="not a saved hwnas predictor"):
        LearnedPredictor.load(junk, ofa)
    junk.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="not a saved hwnas predictor"):
        LearnedPredictor.load(junk, ofa)
    d = json.loads(path.read_text())
    d["mlp"]["layers"][0]["W"] = d["mlp"]["layers"][0]["W"][:-3]
    junk.write_text(json.dumps(d))
    with pytest.raises(UserError, match="corrupt"):
        LearnedPredictor.load(junk, ofa)


def test_learns_the_once_for_all_predictor_from_its_outputs(ofa, shared_data):
    from nas.accuracy.ofa_predictor import OFAAccuracyPredictor

    teacher = OFAAccuracyPredictor(ofa, shared_data / "ofa" / "acc_predictor.pth")
    X = ofa.sample_encoded(np.random.default_rng(5), 1000)
    y = teacher.predict(X)
    model = LearnedPredictor(ofa, seed=0).fit(X[:800], y[:800])
    assert spearman(model.predict(X[800:]), y[800:]) > 0.8
