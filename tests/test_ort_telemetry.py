"""`nas export`, `profile` and `measure` leave no ONNX Runtime telemetry (device id, event queue) behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(home: Path, *argv: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    # PYTHONPATH: the code of this checkout, whatever the current folder (the runs start in HOME).
    env.update({"HOME": str(home), "HWNAS_DEVICE_DIR": str(home / "devices"), "PYTHONPATH": str(REPO),
                **(env_extra or {})})
    code = "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=home, env=env, capture_output=True,
                          text=True, timeout=600)


def _ort_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / ".cache").rglob("*") if p.is_file()) if (home / ".cache").exists() else []


def test_export_profile_and_measure_write_no_telemetry(tmp_path):
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"ops": ["k3e3"] * 21}))
    r = _run(tmp_path, "export", "--space", "proxyless", "--arch", str(arch), "--out", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    r = _run(tmp_path, "profile", "--device", "here", "--space", "proxyless", "--limit", "2", "--rounds", "1",
             "--reps", "2", "--warmup", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    r = _run(tmp_path, "measure", "--device", "x86", "--space", "proxyless", "--arch", str(arch),
             "--rounds", "1", "--reps", "2", "--warmup", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert _ort_files(tmp_path) == []
    # The control: the same library import without hwnas's switch does write them (so the check can fail).
    # ONNX Runtime itself writes nothing when CI is set (as in .ci/run), so the control runs without it.
    control_env = {k: v for k, v in os.environ.items() if k != "CI"}
    r = subprocess.run([sys.executable, "-c", "import onnxruntime"], env={**control_env, "HOME": str(tmp_path),
                       "ORT_DISABLE_TELEMETRY": "0"}, capture_output=True, timeout=120)
    assert r.returncode == 0 and _ort_files(tmp_path) != []
