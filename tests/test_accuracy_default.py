"""The default accuracy estimator per space: ofa's shipped distilled model, the published prior elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nas
from nas.accuracy import default_spec, get_estimator
from nas.accuracy.learned import LearnedPredictor, spearman
from nas.accuracy.ofa_predictor import RELEASED
from nas.accuracy.shipped import shipped_model_path
from search_spaces import get_space

DISTILLED = "distilled from Once-for-All's released accuracy predictor (ImageNet top-1 of subnets of its trained supernet)"
PRIOR_LIMIT = "cannot tell two nets of equal MACs apart"


def test_the_ofa_default_is_the_shipped_model_and_results_say_what_it_is(nas_cli, tmp_path):
    res = nas.search("ofa", "pixel", 80, budget=1000, seed=0)
    assert res.accuracy["name"] == "shipped" and res.accuracy["source"].startswith(DISTILLED)
    assert "ImageNet top-1" in res.accuracy["metric"] and any(DISTILLED in n for n in res.notes)
    code, out, err = nas_cli("search", "--space", "ofa", "--target", "pixel", "--latency", "80ms", "--budget", "500",
                             "--quiet", "--no-plot", "--out", tmp_path / "run")
    assert code == 0, err
    assert f"accuracy: shipped [{DISTILLED}" in out


def test_the_shipped_model_is_package_data():
    from pathlib import Path

    assert shipped_model_path("ofa").parent.name == "models"
    assert '"accuracy/models/*.json"' in (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()


def test_the_shipped_model_records_its_provenance():
    meta = json.loads(shipped_model_path("ofa").read_text())["metadata"]
    assert meta["teacher_sha256"] == RELEASED.sha256
    assert meta["rebuild_command"].startswith("nas fit-predictor --space ofa --teacher ofa ")
    assert meta["n_train"] == sum(meta["sampling"].values()) >= 100_000
    held = meta["heldout"]
    assert held["n_archs"] == 10_000 and held["spearman"] >= 0.99 and held["mae_top1_points"] <= 0.2
    assert [b["budget_ms"] for b in held["bands"]] == [40.0, 80.0]
    assert all(b["spearman"] >= 0.95 for b in held["bands"])


def test_the_shipped_model_tracks_the_released_predictor(shared_data):
    sp = get_space("ofa")
    X = sp.sample_encoded(np.random.default_rng(123), 2000)
    student = get_estimator("default", sp)
    teacher = get_estimator(f"ofa-predictor:{shared_data / 'ofa' / 'acc_predictor.pth'}", sp)
    ys, yt = student.predict(X), teacher.predict(X)
    assert spearman(ys, yt) >= 0.98 and 100 * np.abs(ys - yt).mean() <= 0.2


@pytest.mark.parametrize("space", ["ofa-w1.0", "mbconv", "fbnet", "proxyless", "single_path"])
def test_other_spaces_keep_the_size_only_prior_and_say_what_it_cannot_rank(space):
    assert default_spec(space) == "published"
    ranking = nas.accuracy.describe(get_estimator("default", space))["ranking"]
    assert PRIOR_LIMIT in ranking and "predictor:PATH" in ranking


def test_a_search_with_the_prior_says_what_it_cannot_rank():
    res = nas.search("ofa-w1.0", "pixel", 60, budget=300, seed=0)
    assert res.accuracy["name"] == "published" and any(PRIOR_LIMIT in n for n in res.notes)
    res = nas.search("ofa", "pixel", 60, accuracy="published", budget=300, seed=0)
    assert any(PRIOR_LIMIT in n and "--accuracy ofa" in n for n in res.notes)


def test_nas_spaces_states_each_default(nas_cli):
    code, out, _ = nas_cli("spaces")
    assert code == 0
    defaults, current = {}, None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.split()[0]
        elif line.strip().startswith("accuracy default:"):
            defaults[current] = line
    assert DISTILLED in defaults["ofa"]
    for space in ("ofa-w1.0", "mbconv", "fbnet", "proxyless", "single_path"):
        assert PRIOR_LIMIT in defaults[space] and "predictor:PATH" in defaults[space]


def test_fit_predictor_distils_a_teacher_into_a_loadable_model(nas_cli, tmp_path):
    out = tmp_path / "distilled.json"
    code, stdout, err = nas_cli("fit-predictor", "--space", "ofa-w1.0", "--teacher", "published", "--samples", "2000",
                                "--heldout", "200", "--epochs", "60", "--hidden", "32", "--refine", "0", "--trajectory-evals", "200",
                                "--members", "2", "--trajectory-budgets", "3",
                                "--heldout-band", "pixel:40ms", "--out", out)
    assert code == 0, err
    assert "held out 200 archs: Spearman" in stdout and "within 5% of 40 ms on pixel1" in stdout
    model = LearnedPredictor.load(out, "ofa-w1.0")
    meta = model.metadata_
    assert meta["teacher"] == "published" and sum(meta["sampling"].values()) == meta["n_train"] == 2000
    assert meta["sampling"]["search_trajectories"] == 1000
    assert meta["trajectory_evals"] == {"teacher": 200, "student": 200}
    assert meta["trajectory_budgets"] == 3 and "each at 3 budgets" in meta["sampling_note"]
    assert meta["members"] == 2 and len(model.members_) == 2 and "the mean of 2 MLPs [32]" in stdout
    # distilled weights are stored packed (base64 float32), the compact form a wide student needs
    assert json.loads(out.read_text())["mlp"]["members"][1][0]["W"]["shape"] == [model.members_[1][0][0].shape[0], 32]
    assert "float32" in meta["weights_storage"]
    assert meta["rebuild_command"] == (f"nas fit-predictor --space ofa-w1.0 --teacher published --samples 2000 "
                                       f"--heldout 200 --hidden 32 --epochs 60 --refine 0 --seed 0 --members 2 "
                                       f"--trajectory-evals 200 --trajectory-budgets 3 "
                                       f"--heldout-band pixel:40ms "
                                       f"--out {out}")
    assert model.metric.startswith("ImageNet top-1")  # the teacher's metric carries over
    X = get_space("ofa-w1.0").sample_encoded(np.random.default_rng(0), 300)
    assert spearman(model.predict(X), get_estimator("published", "ofa-w1.0").predict(X)) > 0.8
    code, _, err = nas_cli("fit-predictor", "--space", "ofa-w1.0", "--teacher", "published", "--members", "0",
                           "--out", tmp_path / "none.json")
    assert code == 2 and err.strip().count("\n") == 0 and "--members must be an integer from 1 to 16" in err
    code, _, err = nas_cli("fit-predictor", "--space", "ofa-w1.0", "--teacher", "published", "--trajectory-budgets", "0",
                           "--out", tmp_path / "none.json")
    assert code == 2 and err.strip().count("\n") == 0 and "--trajectory-budgets must be an integer from 1 to 100" in err


def test_distillation_searches_span_each_cost_range_and_keep_every_search_best():
    from nas.accuracy.distill import _rows_in, shipped_device_costs, skewed_archs, trajectory_archs, trajectory_budgets

    sp = get_space("ofa-w1.0")
    rng = np.random.default_rng(0)
    devices = shipped_device_costs(sp)
    assert "pixel1" in [d.name for d in devices]  # every shipped device that prices the space
    probe = np.concatenate([sp.sample_encoded(rng, 2000), skewed_archs(sp, rng, 2000)])
    pixel = next(d for d in devices if d.name == "pixel1")
    b = trajectory_budgets(pixel, probe, 9)
    lat, uniform = pixel.predict(probe), pixel.predict(probe[:2000])
    # both ends are searched, beyond the 10-90 % quantiles of uniform archs the budgets once stopped at
    assert lat.min() < b[0] < np.quantile(uniform, 0.02) and np.quantile(uniform, 0.95) < b[-1] < lat.max()
    assert np.allclose(np.diff(np.log(b)), np.log(b[1] / b[0]))  # log-even in between

    class Recording:
        def __init__(self):
            self.X, self.y = [], []

        def predict(self, X):
            self.X.append(np.asarray(X))
            self.y.append(get_estimator("published", sp).predict(X))
            return self.y[-1]

    teacher = Recording()
    X = trajectory_archs(sp, teacher, np.random.default_rng(1), 400, evals=150)
    assert len(X) == 400 and len(np.unique(X, axis=0)) == 400
    seen, y = np.concatenate(teacher.X), np.concatenate(teacher.y)
    top = seen[y >= np.quantile(y, 0.95)]
    # half the kept archs are searches' best: the visited top 5 % are kept far more than a random draw would
    assert _rows_in(X, top).mean() > 2 * 0.05
    A = np.array([[1, 2], [3, 4], [5, 6]])
    assert _rows_in(A, np.array([[3, 4], [7, 8]])).tolist() == [False, True, False]
