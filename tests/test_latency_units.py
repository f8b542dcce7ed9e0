"""Latency strings: the forms people write, and a clear refusal of anything else."""

import pytest

from latency_predictors.units import parse_latency_ms
from search_spaces.errors import UserError


@pytest.mark.parametrize("text, ms", [("80ms", 80.0), ("80 ms", 80.0), ("0.08s", 80.0), ("0.08 s", 80.0),
                                      ("80", 80.0), (80, 80.0), (12.5, 12.5), (" 7.5ms ", 7.5), ("1e2ms", 100.0)])
def test_accepted_forms(text, ms):
    assert parse_latency_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("bad", ["80 msec", "fast", "80m", "ms", "", "-5ms", "0", "nan", "inf ms", True, None, [80]])
def test_refused_forms_list_what_is_accepted(bad):
    with pytest.raises(UserError) as e:
        parse_latency_ms(bad)
    msg = str(e.value)
    assert "80ms" in msg and "0.08s" in msg and "\n" not in msg


def test_offsets_may_be_zero_or_negative():
    assert parse_latency_ms("0ms", allow_zero=True) == 0.0
    assert parse_latency_ms("-1.5ms", allow_negative=True) == -1.5
