"""Shared fixtures: the read-only public reference data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip when a clone has no reference data beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public reference data not found at {SHARED_DATA} (set HWNAS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def device_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty user device folder, never the real ~/.hwnas."""
    d = tmp_path / "devices"
    monkeypatch.setenv("HWNAS_DEVICE_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def no_recalibration(monkeypatch):
    """A test never spends a minute calibrating a shipped profile to this host unless it asks to.

    ``nas predict``/``search`` calibrate a profile measured on another host by default; tests that
    check that pass ``recalibrate=`` / ``--recalibrate auto`` with a small injected sample.
    """
    monkeypatch.setenv("HWNAS_RECALIBRATE", "off")


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty download cache and is offline: no test may reach the internet.

    Tests of the fetcher turn HWNAS_OFFLINE off and point the URL at a server on 127.0.0.1.
    """
    d = tmp_path / "cache"
    monkeypatch.setenv("HWNAS_CACHE_DIR", str(d))
    monkeypatch.setenv("HWNAS_OFFLINE", "1")
    return d


@pytest.fixture
def nas_cli(tmp_path, monkeypatch, capsys):
    """Run the `nas` CLI in-process: returns (exit code, stdout, stderr)."""
    from nas.cli import main

    def run(*argv: str):
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse usage errors
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def note10(shared_data, nas_cli):
    """Once-for-All's note10 tables imported into the test's user device folder."""
    files = sorted((shared_data / "ofa").glob("note10_*_lookup_table.yaml"))
    code, _, err = nas_cli("import-table", "--format", "ofa", *files, "--device", "note10")
    assert code == 0, err
    return "note10"
