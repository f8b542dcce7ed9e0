"""``--verify``: measure a search's top-k whole on this host and re-rank them by the measurement.

Only targets whose profile was measured on this very host (``nas profile``) can be verified; a
modelled or imported profile, or one taken on another machine, is left as predicted and the
result says so.
"""

from __future__ import annotations

from search_spaces.errors import UserError

from .results import SearchResult


def verify_result(result: SearchResult, progress: bool = False) -> SearchResult:
    """Measured latency of every top-k arch on each verifiable target; best = best within budget."""
    from latency_predictors.hostcheck import host_differences
    from latency_predictors.measure import measure_device
    from latency_predictors.registry import get_profile

    if not result.top_k:
        return result
    verified = []
    for t in result.targets:
        try:
            prof = get_profile(t.device)
        except UserError:
            result.notes.append(f"--verify: {t.device} is not a device profile; kept as predicted")
            continue
        if prof.source.kind != "measured" or prof.host is None:
            result.notes.append(f"--verify: {t.device} is {prof.source.kind}, not measured here; kept as predicted")
            continue
        diffs = host_differences(prof.host)
        if diffs:
            result.notes.append(f"--verify: {t.device} was measured on another host ({'; '.join(diffs)}); "
                                "kept as predicted")
            continue
        res = measure_device(prof, result.space, [s.arch for s in result.top_k], progress=progress)
        for s, ms in zip(result.top_k, res["ms"]):
            s.measured_latency_ms[t.device] = float(ms)
        verified.append(t)
    if not verified:
        return result

    def rank(s):
        within = all(s.measured_latency_ms[t.device] <= t.limit_ms for t in verified)
        return (not within, -s.top1)

    result.top_k.sort(key=rank)
    result.best = result.top_k[0]
    result.verified_devices = [t.device for t in verified]
    if any(s.measured_latency_ms[t.device] > t.limit_ms for t in verified for s in [result.best]):
        result.notes.append("--verify: no top-k arch meets every budget when measured; best is the most accurate")
    return result
