"""experiments/bench/search_vs_ofa.py's time-to-equal-quality figures, on a small real search."""

import os
import tempfile

import pytest

from experiments.bench import search_vs_ofa as bench


def test_time_to_top1_is_the_first_generation_at_or_above_the_level():
    trace = [(0.01, 0.70), (0.02, 0.75), (0.03, 0.75), (0.05, 0.80)]
    assert bench.time_to_top1(trace, 0.75) == 0.02
    assert bench.time_to_top1(trace, 0.80) == 0.05
    assert bench.time_to_top1(trace, 0.81) is None
    assert bench.time_to_top1(trace, None) is None


def test_median_time_counts_a_run_that_never_reached_the_level_as_slowest():
    assert bench.median_or_none([0.1, 0.3, None]) == 0.3
    assert bench.median_or_none([0.1, None, None]) is None
    assert bench.median_or_none([]) is None


def test_a_real_search_trace_reaches_its_own_final_top1_within_its_wall_time(monkeypatch):
    data = bench.ofa_data_dir()
    reason = bench.missing_data_reason(data)
    if reason:
        pytest.skip(reason)
    from nas.accuracy.ofa_predictor import OFAAccuracyPredictor
    from search_spaces import get_space

    monkeypatch.setenv("HWNAS_DEVICE_DIR", os.environ.get("HWNAS_DEVICE_DIR", ""))  # restored afterwards
    with tempfile.TemporaryDirectory() as tmp:
        bench.setup_note10(data, tmp)
        acc = OFAAccuracyPredictor(get_space("ofa"), data / "acc_predictor.pth")
        r = bench.hwnas_search(acc, 25, seed=1, budget=300)
    trace = r["_trace"]
    assert len(trace) >= 3  # one entry per generation
    times = [t for t, _ in trace]
    best = [b for _, b in trace]
    assert times == sorted(times) and best == sorted(best)  # best-so-far never falls
    assert round(best[-1], 4) == r["top1"]
    reached = bench.time_to_top1(trace, best[-1])
    assert reached is not None and 0 < reached <= r["wall_s"] + 1e-3
    assert bench.time_to_top1(trace, best[-1] + 1e-9) is None


def test_a_bench_given_an_unreachable_budget_says_so_in_one_line_and_exits_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    if bench.missing_data_reason(bench.ofa_data_dir()):
        pytest.skip(bench.missing_data_reason(bench.ofa_data_dir()))
    repo = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-m", "experiments.bench.search_vs_ofa", "--targets", "5", "--no-ofa",
                        "--out", str(tmp_path / "r.json")], cwd=repo, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("search_vs_ofa: error: latency budget 5 ms on note10 is below"), p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "r.json").exists()
