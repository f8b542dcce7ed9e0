"""The README's CLI tour runs top to bottom as written (the fast part; the slow part must parse)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tour():
    spec = importlib.util.spec_from_file_location("hwnas_readme_tour", REPO / "experiments" / "readme_tour.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hwnas_readme_tour"] = mod
    spec.loader.exec_module(mod)
    return mod


def _argv(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def test_every_tour_command_is_a_valid_nas_command_line():
    from nas.cli import build_parser

    commands = _tour().tour_commands()
    assert len(commands) >= 15
    for command in commands:
        for part in command.split("&&"):
            argv = _argv(part)
            assert argv[0] == "nas", command
            if "*" in part:  # a glob the shell expands
                continue
            build_parser().parse_args(argv[1:])  # unknown flags or bad values raise SystemExit


def test_the_tour_runs_as_written(tmp_path):
    tour = _tour()
    rows = tour.run_tour(tmp_path, include_slow=False, timeout_s=900)
    failed = [r for r in rows if r.get("exit", 0) != 0]
    assert not failed, failed
    ran = [r["command"] for r in rows if "exit" in r]
    skipped = {r["command"]: r["skipped"] for r in rows if "skipped" in r}
    allowed = ("slow (measures this machine)", "needs your own measured", "reference data not found")
    assert all(reason.startswith(allowed) for reason in skipped.values()), skipped
    assert any(c.startswith("nas search") for c in ran)
    if not tour.shared_data_dir().is_dir():
        pytest.skip(f"ran {len(ran)} tour commands; the rest need ../shared/data")
    clone = tmp_path / "clone"
    # what the tour promises to leave behind, and nothing written over the shipped profiles
    for made in ("runs/pixel80/result.json", "arch.json", "model.onnx"):
        assert (clone / made).is_file(), made
    assert (tmp_path / "device_profiles" / "mypixel.yaml").is_file()
    assert (tmp_path / "device_profiles" / "note10.yaml").is_file()
