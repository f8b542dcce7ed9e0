"""Run the README's "A tour of the CLI" top to bottom, as written, in a fresh folder.

The commands are read from the first ```bash block under the tour's heading (continuation lines
joined) and each runs in bash from a scratch folder laid out like a fresh clone: the reference
data beside it as ``../shared/data`` (a link to $HWNAS_SHARED_DATA or ../shared/data), a private
user device folder, the ``nas`` of this interpreter's environment first on PATH.

A command is skipped, with the reason, when it needs what a clone does not have: the reference
data when it is absent, or the user's own measurements (``measured.csv``). The slow ones
(profiling and calibrating this machine: a few minutes on 2 cores) run only with ``--all``;
tests/test_readme_tour.py runs the rest and checks that the slow ones parse.

    python experiments/readme_tour.py            # the fast part
    python experiments/readme_tour.py --all      # every command (a few minutes)

Prints one JSON object: per command its exit status, wall seconds and, on failure, stderr's tail.
Exits 1 when a command that ran failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## A tour of the CLI"
SLOW = ("nas profile", "nas calibrate", "nas validate-latency")
NEEDS_USER_DATA = {"measured.csv": "needs your own measured (arch, top-1) pairs, which a clone does not have"}


def tour_commands(readme: Path = REPO / "README.md") -> list[str]:
    """The tour's commands in order, continuation lines joined, comments kept (bash drops them)."""
    text = readme.read_text()
    start = text.index(TOUR_HEADING)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    if block is None:
        raise ValueError(f"no ```bash block under {TOUR_HEADING!r} in {readme}")
    commands, pending = [], ""
    for line in block.group(1).splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def shared_data_dir() -> Path:
    return Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


def skip_reason(command: str, clone: Path, data: Path, include_slow: bool) -> str | None:
    if "../shared/data" in command and not data.is_dir():
        return f"reference data not found at {data} (set HWNAS_SHARED_DATA)"
    for name, reason in NEEDS_USER_DATA.items():
        if name in command and not (clone / name).exists():
            return reason
    if not include_slow and command.startswith(SLOW):
        return "slow (measures this machine); run experiments/readme_tour.py --all"
    return None


def prepare(root: Path, data: Path) -> tuple[Path, dict]:
    """A folder laid out like a fresh clone beside ../shared/data, and the environment to run in."""
    clone = root / "clone"
    clone.mkdir(parents=True)
    if data.is_dir():
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(data.resolve())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HWNAS_DEVICE_DIR": str(root / "device_profiles")}
    env.pop("NAS_DEBUG", None)
    return clone, env


def run_tour(root: Path, include_slow: bool = False, timeout_s: float = 1800) -> list[dict]:
    data = shared_data_dir()
    clone, env = prepare(root, data)
    rows = []
    for command in tour_commands():
        reason = skip_reason(command, clone, data, include_slow)
        if reason:
            rows.append({"command": command, "skipped": reason})
            continue
        t0 = time.perf_counter()
        p = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                           timeout=timeout_s)
        row = {"command": command, "exit": p.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
        if p.returncode != 0:
            row["stderr_tail"] = p.stderr[-1500:]
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also run the slow commands (profile, calibrate, validate)")
    ap.add_argument("--keep", help="run in this (new) folder and keep what the tour wrote")
    args = ap.parse_args(argv)
    if args.keep:
        rows = run_tour(Path(args.keep), include_slow=args.all)
    else:
        with tempfile.TemporaryDirectory(prefix="hwnas-tour-") as tmp:
            rows = run_tour(Path(tmp), include_slow=args.all)
    failed = [r for r in rows if r.get("exit", 0) != 0]
    print(json.dumps({"commands": rows, "ran": sum("exit" in r for r in rows), "failed": len(failed),
                      "skipped": sum("skipped" in r for r in rows)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "readme_tour"))
