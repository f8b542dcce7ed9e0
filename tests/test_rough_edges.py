"""Small things a new user meets first: `nas spaces` listings, example commands that exist, one-line errors."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_spaces_lists_every_searched_value_with_partial_and_fixed_slots(nas_cli):
    code, out, _ = nas_cli("spaces", "--json")
    rows = {r["name"]: {d["names"]: d for d in r["dims"]} for r in json.loads(out)}
    assert code == 0
    proxyless = rows["proxyless"]["ops[21]"]
    assert "skip" in proxyless["choices"] and proxyless["partial"] == {"skip": 15}
    single = rows["single_path"]["ops[22]"]
    assert single["choices"] == ["k3e3", "k3e6", "k5e3", "k5e6", "skip"] and single["fixed"] == {"ops[0]": "k3e1"}
    code, text, _ = nas_cli("spaces")
    assert "k7e6, skip (skip in 15 of 21)" in text and "ops[0] fixed: k3e1" in text


def _documented_commands(text: str):
    """`nas <command> --flag ...` mentions in prose or examples."""
    for m in re.finditer(r"nas ([a-z-]+)((?: --?[a-z][a-z-]*(?: [^\s`-][^\s`]*)?)+)", text):
        yield m.group(1), re.findall(r"(--[a-z][a-z-]*)", m.group(2))


@pytest.mark.parametrize("path", ["experiments/custom_space.py", "docs/spaces.md", "docs/latency.md",
                                  "docs/profiling.md"])
def test_documented_flags_exist(nas_cli, path):
    from nas.cli import COMMANDS

    text = (REPO / path).read_text()
    names = {c.replace("_", "-") for c in COMMANDS}
    seen = 0
    for cmd, flags in _documented_commands(text):
        if cmd not in names:
            continue
        code, help_text, _ = nas_cli(cmd, "--help")
        assert code == 0
        for f in flags:
            assert f in help_text, f"{path}: `nas {cmd} {f}` is not a flag of nas {cmd}"
            seen += 1
    assert seen > 0


def test_a_pickle_given_as_ofa_predictor_is_one_line(tmp_path):
    # A subprocess: in-process, pytest would capture torch's warning instead of stderr showing it.
    import os
    import subprocess
    import sys

    p = tmp_path / "p.pkl"
    p.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    code = "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "search", "--space", "ofa", "--target", "pixel", "--latency", "80ms",
                        "--budget", "50", "--accuracy", f"ofa-predictor:{p}", "--out", str(tmp_path / "run"),
                        "--quiet", "--no-plot"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO), "HWNAS_DEVICE_DIR": str(tmp_path / "dev")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "not a readable torch state dict" in r.stderr
