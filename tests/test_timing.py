"""The timing protocol's statistic and the priority check (``latency_predictors.timing`` / ``sched``)."""

from __future__ import annotations

import numpy as np

from latency_predictors.sched import priority_message, priority_state
from latency_predictors.timing import RoundPlan, kept_ms, repeat_pct, run_rounds


class BusyHostTimer:
    """A 10 ms run, slowed to 15 ms in most runs (another session's job sharing the cores)."""

    def __init__(self, clean_ms: float, slowed_share: float, seed: int):
        self.clean_ms, self.share = clean_ms, slowed_share
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def time_ms(self, warmup: int, reps: int) -> np.ndarray:
        self.calls += 1
        slowed = self.rng.random(reps) < self.share
        slowed[0] = False  # at least one clean run per round
        return np.where(slowed, 1.5 * self.clean_ms, self.clean_ms) + self.rng.random(reps) * 0.01


def test_a_round_keeps_its_fastest_run_so_a_mostly_slowed_round_still_gives_the_clean_time():
    timers = {"a": BusyHostTimer(10.0, 0.7, 0), "b": BusyHostTimer(4.0, 0.9, 1)}
    rounds: dict[str, list[float]] = {"b": [4.002, 4.001]}  # resumed: b lacks three rounds
    run_rounds(timers, rounds, RoundPlan(rounds=5, reps=10, warmup=1), np.random.default_rng(0))
    assert len(rounds["a"]) == 5 and len(rounds["b"]) == 5 and timers["b"].calls == 3
    # with 70-90 % of runs slowed, every round's median would sit at the slow mode (15 / 6 ms)
    assert all(10.0 <= v < 10.01 for v in rounds["a"]) and kept_ms(rounds["a"]) < 10.01
    assert all(4.0 <= v < 4.01 for v in rounds["b"])
    assert repeat_pct(rounds["a"]) < 0.1


def test_priority_warning_only_when_nice_asks_for_more_than_the_session_group_has(tmp_path, monkeypatch):
    switch, group = tmp_path / "switch", tmp_path / "autogroup"
    switch.write_text("1\n")
    group.write_text("/autogroup-25 nice 0\n")
    monkeypatch.setattr("os.getpriority", lambda *_: -15)
    state = priority_state(switch, group)
    assert state == {"nice": -15, "autogroup_nice": 0}
    msg = priority_message(state)
    assert msg is not None and "nice -15" in msg and "setsid" in msg and "\n" not in msg
    group.write_text("/autogroup-25 nice -15\n")
    assert priority_message(priority_state(switch, group)) is None  # the group has the priority asked for
    switch.write_text("0\n")
    assert priority_state(switch, group)["autogroup_nice"] is None  # no session groups: nice orders directly
    assert priority_message({"nice": -15, "autogroup_nice": None}) is None
    assert priority_message({"nice": 10, "autogroup_nice": 0}) is None  # nobody asked for priority
