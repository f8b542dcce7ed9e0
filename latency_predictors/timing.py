"""The measurement protocol shared by blocks and whole networks: interleaved shuffled rounds.

On a shared machine interference only ever slows a run down, and it comes in bursts lasting from
microseconds (an interrupt) to seconds (another process's job). So each item (a block, a network) is
timed in several rounds; a round visits every pending item once, in a fresh random order, running
``warmup`` untimed then ``reps`` timed runs. A round's value is its **fastest run**, and across rounds
the **fastest round** is kept: both are minima, because interference is one-sided. A round's median
was used before; it breaks when the host is busy: runs then fall into a clean and a slowed mode
(NASNet-A on 2 busy cores: 12.5-13 ms vs 16.5-18 ms), and once half a round's runs are slowed its
median jumps to the slow mode. Measured on 12 networks timed in 6 rounds, the even/odd-round
disagreement (the noise floor) was 4.2 % with round medians, 3.8 % with the lower quartile and
1.0 % with the fastest run (docs/profiling.md). Interleaving spreads one item's rounds over the whole
measurement, so a burst rarely hits all of them. Blocks and whole networks use the same statistic,
so the two stay comparable.

Two spreads are recorded per item: ``spread_pct``, the relative range of the round values (how much
one round may be off), and ``repeat_pct``, the difference between the statistic computed on the
even and on the odd rounds (how much re-measuring would move the stored number; the noise floor).

Priority: on a shared host run timing commands with priority; ``priority_check`` (``sched.py``) warns
when ``nice`` cannot give it (Linux groups processes by session, and nice only orders a session's own).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from search_spaces.errors import UserError


class Timer(Protocol):
    def time_ms(self, warmup: int, reps: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RoundPlan:
    """How many rounds, and untimed/timed runs per item per round."""

    rounds: int = 5
    reps: int = 10
    warmup: int = 2

    def __post_init__(self):
        for name in ("rounds", "reps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UserError(f"warmup must be an int >= 0, got {self.warmup!r}")


def round_ms(times_ms) -> float:
    """A round's value: its fastest timed run (interference only slows runs down; see the module doc)."""
    return float(np.min(times_ms))


def kept_ms(round_values) -> float:
    """The stored latency: the fastest round's value, i.e. the fastest timed run of all rounds."""
    return float(np.min(round_values))


def spread_pct(round_values) -> float:
    """Relative range of the round values, in percent of the kept value."""
    rm = np.asarray(round_values, dtype=float)
    return float(100.0 * (rm.max() - rm.min()) / rm.min()) if len(rm) and rm.min() > 0 else 0.0


def repeat_pct(round_values) -> float | None:
    """|kept(even rounds) - kept(odd rounds)| in percent: how far a re-measurement would move the value."""
    rm = np.asarray(round_values, dtype=float)
    if len(rm) < 2:
        return None
    a, b = rm[0::2].min(), rm[1::2].min()
    return float(100.0 * abs(a - b) / min(a, b)) if min(a, b) > 0 else 0.0


def run_rounds(timers: dict[str, Timer], medians: dict[str, list[float]], plan: RoundPlan,
               rng: np.random.Generator, on_round: Callable[[int], None] | None = None,
               progress: "Progress | None" = None) -> None:
    """Time every item until it has ``plan.rounds`` round values (``round_ms``, appended to ``medians[key]``).

    Items that already have some rounds (a resumed run) get only the rounds they lack.
    ``on_round(i)`` runs after each round (the caller saves there).
    """
    from .sched import priority_check

    priority_check()  # once per process: warns when this process's nice cannot order it before others
    for key in timers:
        medians.setdefault(key, [])
    r = 0
    while True:
        pending = [k for k in timers if len(medians[k]) < plan.rounds]
        if not pending:
            return
        for i in rng.permutation(len(pending)):
            key = pending[i]
            medians[key].append(round_ms(timers[key].time_ms(plan.warmup, plan.reps)))
            if progress is not None:
                progress.advance()
        if on_round is not None:
            on_round(r)
        r += 1


class Progress:
    """A progress bar with ETA on stderr (one line redrawn on a terminal, a line per 10 % elsewhere)."""

    def __init__(self, total: int, label: str, stream=None, enabled: bool = True):
        self.total, self.label = max(int(total), 0), label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 0
        self.done = 0
        self.t0 = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw >= 0.2 or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line(now))
                if self.done >= self.total:
                    self.stream.write("\n")
                self.stream.flush()
        else:
            decile = (10 * self.done) // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line(now) + "\n")
                self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = now - self.t0
        frac = min(self.done / self.total, 1.0)
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        bar = "#" * int(24 * frac)
        return (f"{self.label} [{bar:<24}] {self.done}/{self.total} {100 * frac:5.1f}% "
                f"elapsed {_fmt_s(elapsed)} eta {_fmt_s(eta)}")


def _fmt_s(s: float) -> str:
    if not np.isfinite(s):
        return "--:--"
    s = int(round(s))
    return f"{s // 60:d}:{s % 60:02d}"
