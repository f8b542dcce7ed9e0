"""One SearchConfig: the CLI, the Python API and a sweep trial build the same config for one request."""

from __future__ import annotations

import json

import pytest

import nas
from nas.cli import build_parser
from nas.cli.search import search_config
from nas.search_config import DEFAULT_BUDGET, EXPENSIVE_BUDGET, SearchConfig
from nas.sweep.trials import get_trial_kind, run_search_trial
from search_spaces.errors import UserError

# one request, as each front end spells it
CLI = ["search", "--space", "ofa", "--target", "pixel", "--latency", "70ms", "--budget", "60", "--seed", "3",
       "--strategy", "random", "--param", "batch_size=20", "--top-k", "2", "--latency-margin", "0.05"]
API = dict(space="ofa", target="pixel", latency_ms="70ms", budget=60, seed=3, strategy="random",
           strategy_params={"batch_size": 20}, top_k=2, latency_margin=0.05)
SWEEP = {"space": "ofa", "target": "pixel", "latency_ms": "70ms", "budget": 60, "seed": 3, "strategy": "random",
         "strategy_params": {"random": {"batch_size": 20}, "evolution": {"population": 10}}, "top_k": 2,
         "latency_margin": 0.05}


def _sweep_config(params: dict) -> SearchConfig:
    per = params["strategy_params"]
    return SearchConfig.of(**{**params, "strategy_params": per.get(params["strategy"], {})})


def test_cli_api_and_sweep_build_identical_configs():
    cli = search_config(build_parser().parse_args(CLI))
    api = SearchConfig.of(**API)
    sweep = _sweep_config(get_trial_kind("search").validate(SWEEP))
    assert cli == api == sweep
    assert cli.targets == [("pixel", 70.0)] and cli.strategy_params == {"batch_size": 20} and cli.margin == 0.05
    # the defaults are the same too: one declaration, whichever front end leaves a setting out
    bare_cli = search_config(build_parser().parse_args(["search", "--latency", "80"]))
    bare_sweep = _sweep_config(get_trial_kind("search").validate({"latency_ms": 80}))
    assert bare_cli == SearchConfig.of(latency_ms=80) == bare_sweep == SearchConfig()
    assert bare_cli.budget == DEFAULT_BUDGET
    # a measured estimator's smaller default budget is the config's rule, not one front end's
    ckpt = ["--accuracy", "supernet:runs/x"]
    assert search_config(build_parser().parse_args(["search", "--latency", "80", *ckpt])).budget == EXPENSIVE_BUDGET
    assert SearchConfig.of(accuracy="supernet:runs/x").budget == EXPENSIVE_BUDGET


def test_the_three_front_ends_write_the_same_config_json(tmp_path, nas_cli):
    """The run folders of the same request hold byte-equal config.json files (and so one fingerprint)."""
    code, _, err = nas_cli(*CLI, "--out", tmp_path / "cli", "--quiet", "--no-plot")
    assert code == 0, err
    nas.search(**API, out=tmp_path / "api", plot=False)
    (tmp_path / "sweep").mkdir()
    run_search_trial(get_trial_kind("search").validate(SWEEP), tmp_path / "sweep", lambda m: None)
    texts = [(tmp_path / d / "config.json").read_text() for d in ("cli", "api", "sweep")]
    assert texts[0] == texts[1] == texts[2]
    written = json.loads(texts[0])
    assert written["targets"] == [["pixel1", 70.0]]  # resolved: the device's profile name
    assert SearchConfig.read(tmp_path / "api").fingerprint() == json.dumps(written, sort_keys=True)
    # and the same result: the config is the whole definition of the search
    results = [json.loads((tmp_path / d / "result.json").read_text())["best"] for d in ("cli", "api", "sweep")]
    assert results[0] == results[1] == results[2]


def test_resume_api_continues_from_config_json(tmp_path):
    out = tmp_path / "run"
    first = nas.search(**API, out=out, plot=False)
    again = nas.resume(out, plot=False)
    assert again.best == first.best
    with pytest.raises(UserError, match="not both: drop budget"):
        nas.search(SearchConfig.of(**API), budget=10)


@pytest.mark.parametrize("settings, message", [
    (dict(budget=0), "budget: must be >= 1, got 0"),
    (dict(seed=-1), "seed: must be >= 0, got -1"),
    (dict(top_k="many"), "top_k: Input should be a valid integer"),
    (dict(target=["pixel", "x86"], latency_ms=[1, 2, 3]), "one latency budget per target"),
    (dict(latency_ms="fast"), "latency_ms: latency 'fast' is not understood"),
    (dict(reward="soft"), "reward: unknown reward 'soft'"),
    (dict(budgett=5), "budgett: unknown setting; accepted: space, space_module, target, latency_ms"),
])
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(UserError) as e:
        SearchConfig.of(**settings)
    assert message in str(e.value) and "\n" not in str(e.value)
