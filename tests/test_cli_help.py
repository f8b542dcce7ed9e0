"""`--help` and `--version` of `nas` and of every subcommand, discovered from the parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import build_parser

NAS = str(Path(sys.executable).with_name("nas"))


def _subcommands() -> list[str]:
    return sorted(build_parser().commands)


def test_every_registered_command_is_discovered():
    from nas.cli import COMMANDS

    assert len(_subcommands()) == len(COMMANDS) >= 14


@pytest.mark.parametrize("argv", [["--help"], ["-h"]] + [[c, "--help"] for c in _subcommands()],
                         ids=lambda a: " ".join(a))
def test_help_exits_0_with_usage_and_an_example(argv, nas_cli):
    code, out, err = nas_cli(*argv)
    assert code == 0, err
    assert out.startswith("usage: nas") and "example:" in out
    assert err == ""


def test_top_level_help_lists_every_command_as_a_process():
    """The installed entry point, as a user runs it (the crash was a bare % in a command summary)."""
    p = subprocess.run([NAS, "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for c in _subcommands():
        assert f"    {c} " in p.stdout or f"    {c}\n" in p.stdout
    assert "+-5/10 %" in " ".join(p.stdout.split())  # the summary that held the bare %, printed as written


def test_version(nas_cli):
    from importlib.metadata import version

    code, out, _ = nas_cli("--version")
    assert code == 0 and out.strip() == f"hwnas {version('hwnas')}"


def test_search_help_lists_every_registered_strategy(nas_cli):
    from nas.strategies import list_strategies

    _, out, _ = nas_cli("search", "--help")
    flat = " ".join(out.split())
    for s in list_strategies():
        assert s in flat
    assert "random seed" in flat and "how many of the best archs" in flat
