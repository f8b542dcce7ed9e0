"""Hostile input to every command: one line on stderr, exit 2, no traceback, earlier results untouched.

Each case is one row of ``CASES``: an id, the argv (placeholders below) and, optionally, a
function that damages a copy of a finished search run folder first. To add a case, add a row.

Placeholders in argv:
  {tmp}      the test's temp folder
  {earlier}  a folder holding earlier results; it must be byte-identical after the command
  {run}      a copy of a finished search run folder (``resume`` cases damage it first);
             its files must also stay byte-identical
  {F:NAME}   a hostile file from ``HOSTILE_FILES``, written into {tmp}

Most cases run in-process (the ``nas_cli`` fixture); ``SUBPROCESS`` ones run the installed ``nas``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

NAS = str(Path(sys.executable).with_name("nas"))

DEEP = 100_000
HOSTILE_FILES: dict[str, bytes] = {
    "binary": bytes(range(256)) * 8 + b"\xff\xfe\xfa" * 100,  # not UTF-8
    "png": b"\x89PNG\r\n\x1a\n" + bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
    "empty": b"",
    "deep_json": b"[" * DEEP + b"]" * DEEP,
    "deep_json_obj": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "deep_json_300": b"[" * 300 + b"]" * 300,  # parses, then too deep for the recursive code after it
    "deep_yaml": b"[" * DEEP + b"]" * DEEP,  # libyaml's composer segfaults on this unguarded
    "deep_yaml_block": b"".join(b"  " * i + b"k:\n" for i in range(400)) + b"  " * 400 + b"v: 1\n",
    "not_json": b"{not json",
    "json_list_of_ints": b"[1, 2, 3]",
    "json_string": b'"just a string"',
    "json_null": b"null",
    "json_empty_list": b"[]",
    "arch_wrong_keys": b'{"foo": [1, 2, 3]}',
    "arch_wrong_types": b'{"ks": "seven", "e": null, "d": [2], "r": [224]}',
    "bad_yaml": b"a: [1, 2\nb: {",
    "yaml_python_tag": b"!!python/object/apply:os.system ['echo pwned']\n",
    "yaml_list": b"- 1\n- 2\n",
    "yaml_scalar": b"just text\n",
    "nul_bytes": b"\x00" * 64,
    "csv_garbage": b"arch,top1\n\x00\x01,\n{,,,\n",
    "csv_no_rows": b"arch,top1\n",
    "huge_line": b"a" * 300_000,
}
for name, value in list(HOSTILE_FILES.items()):
    if name.startswith("yaml") or name in ("bad_yaml", "deep_yaml", "deep_yaml_block"):
        HOSTILE_FILES[name + ".yaml"] = HOSTILE_FILES.pop(name)
    elif name.startswith("csv"):
        HOSTILE_FILES[name + ".csv"] = HOSTILE_FILES.pop(name)
    else:
        HOSTILE_FILES[name + ".json"] = HOSTILE_FILES.pop(name)

FILE_ARGS = {  # a command's options that read one file, each fed every hostile file
    "predict-arch": ["predict", "--space", "ofa", "--device", "pixel", "--arch"],
    "export-arch": ["export", "--space", "ofa", "--out", "{tmp}/m.onnx", "--arch"],
    "convert": ["convert", "--out", "{tmp}/arch.json"],
    "sweep-file": ["sweep", "--out", "{tmp}/sweep", "--cpus", "1"],
    "fit-predictor-data": ["fit-predictor", "--space", "ofa", "--out", "{tmp}/p.json", "--data"],
    "search-predictor": ["search", "--latency", "80ms", "--budget", "50", "--out", "{tmp}/s", "--accuracy"],
    "import-table": ["import-table", "--format", "ofa", "--device", "hostile", "--out", "{earlier}"],
    "fit-device-whole": ["fit-device", "--name", "hostile", "--arch-configs", "{tmp}/arch_configs.json",
                         "--blocks", "{F:empty.json}", "--out", "{earlier}", "--whole"],
    "fit-device-configs": ["fit-device", "--name", "hostile", "--whole", "{F:csv_no_rows.csv}",
                           "--blocks", "{F:empty.json}", "--out", "{earlier}", "--arch-configs"],
    "measure-arch": ["measure", "--device", "x86", "--space", "ofa", "--arch"],
}


def _file_cases():
    cases = []
    for label, argv in FILE_ARGS.items():
        for name in HOSTILE_FILES:
            value = f"{{F:{name}}}"
            if label == "search-predictor":
                value = f"predictor:{{F:{name}}}"
            cases.append((f"{label}[{name}]", [*argv, value], None))
        cases.append((f"{label}[missing]", [*argv, "{tmp}/does-not-exist.json"], None))
        cases.append((f"{label}[a-folder]", [*argv, "{earlier}"], None))
    return cases


# ---- damaging a finished run folder for --resume ------------------------------------------------
def _truncate(run: Path):
    p = run / "checkpoint.npz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty_ckpt(run: Path):
    (run / "checkpoint.npz").write_bytes(b"")


def _bitflip(run: Path):
    p = run / "checkpoint.npz"
    data = bytearray(p.read_bytes())
    for i in range(200, len(data) - 200, 997):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))


def _ckpt_not_npz(run: Path):
    (run / "checkpoint.npz").write_bytes(HOSTILE_FILES["binary.json"])


def _config_edit(**changes):
    def damage(run: Path):
        cfg = json.loads((run / "config.json").read_text())
        for k, v in changes.items():
            if v is _DROP:
                cfg.pop(k)
            else:
                cfg[k] = v
        (run / "config.json").write_text(json.dumps(cfg))

    damage.__name__ = "config_" + "_".join(changes)
    return damage


_DROP = object()


def _config_bytes(data: bytes):
    def damage(run: Path):
        (run / "config.json").write_bytes(data)

    return damage


def _no_config(run: Path):
    (run / "config.json").unlink()


RESUME = ["search", "--resume", "{run}", "--quiet", "--no-plot"]
RESUME_CASES = [
    ("resume[truncated-checkpoint]", RESUME, _truncate),
    ("resume[empty-checkpoint]", RESUME, _empty_ckpt),
    ("resume[bitflipped-checkpoint]", RESUME, _bitflip),
    ("resume[checkpoint-not-npz]", RESUME, _ckpt_not_npz),
    ("resume[config-missing-space]", RESUME, _config_edit(space=_DROP)),
    ("resume[config-missing-targets]", RESUME, _config_edit(targets=_DROP)),
    ("resume[config-missing-budget]", RESUME, _config_edit(budget=_DROP)),
    ("resume[config-budget-string]", RESUME, _config_edit(budget="lots")),
    ("resume[config-budget-negative]", RESUME, _config_edit(budget=-5)),
    ("resume[config-seed-list]", RESUME, _config_edit(seed=[1])),
    ("resume[config-targets-string]", RESUME, _config_edit(targets="pixel")),
    ("resume[config-targets-empty]", RESUME, _config_edit(targets=[])),
    ("resume[config-targets-bad-budget]", RESUME, _config_edit(targets=[["pixel1", "fast"]])),
    ("resume[config-strategy-params-list]", RESUME, _config_edit(strategy_params=[1, 2])),
    ("resume[config-unknown-strategy]", RESUME, _config_edit(strategy="nope")),
    ("resume[config-unknown-space]", RESUME, _config_edit(space="nope")),
    ("resume[config-space-module]", RESUME, _config_edit(space_module="/tmp/evil.py:Evil")),
    ("resume[config-binary]", RESUME, _config_bytes(HOSTILE_FILES["binary.json"])),
    ("resume[config-deep]", RESUME, _config_bytes(HOSTILE_FILES["deep_json.json"])),
    ("resume[config-list]", RESUME, _config_bytes(b"[1, 2]")),
    ("resume[config-empty]", RESUME, _config_bytes(b"")),
    ("resume[no-config]", RESUME, _no_config),
    ("resume[with-budget]", [*RESUME, "--budget", "999"], None),
    ("resume[with-seed]", [*RESUME, "--seed", "3"], None),
    ("resume[with-target]", [*RESUME, "--target", "x86"], None),
    ("resume[with-latency]", [*RESUME, "--latency", "30ms"], None),
    ("resume[with-strategy]", [*RESUME, "--strategy", "random"], None),
    ("resume[with-param]", [*RESUME, "--param", "population=10"], None),
    ("resume[with-out]", [*RESUME, "--out", "{tmp}/elsewhere"], None),
    ("resume[with-space-module]", [*RESUME, "--space-module", "experiments/custom_space.py:TinyChain"], None),
    ("resume[missing-folder]", ["search", "--resume", "{tmp}/nope"], None),
    ("resume[a-file]", ["search", "--resume", "{F:binary.json}"], None),
    ("resume[not-a-run-folder]", ["search", "--resume", "{earlier}"], None),
]

SEARCH = ["search", "--budget", "50", "--quiet", "--no-plot"]
SEARCH_CASES = [
    ("search[out-not-empty]", [*SEARCH, "--latency", "80ms", "--out", "{earlier}"], None),
    ("search[out-is-a-file]", [*SEARCH, "--latency", "80ms", "--out", "{earlier}/result.json"], None),
    ("search[out-under-a-file]", [*SEARCH, "--latency", "80ms", "--out", "{earlier}/result.json/run"], None),
    ("search[out-unwritable]", [*SEARCH, "--latency", "80ms", "--out", "/proc/hwnas-no/run"], None),
    ("search[out-on-sysfs]", [*SEARCH, "--latency", "80ms", "--out", "/sys/hwnas-no"], None),
    ("search[out-is-finished-run]", [*SEARCH, "--latency", "80ms", "--out", "{run}"], None),
    ("search[no-latency]", ["search", "--out", "{tmp}/s"], None),
    ("search[latency-text]", [*SEARCH, "--latency", "fast"], None),
    ("search[latency-zero]", [*SEARCH, "--latency", "0"], None),
    ("search[latency-negative]", [*SEARCH, "--latency=-5ms"], None),
    ("search[latency-nan]", [*SEARCH, "--latency", "nan"], None),
    ("search[latency-inf]", [*SEARCH, "--latency", "inf"], None),
    ("search[latency-below-smallest]", [*SEARCH, "--latency", "1ms"], None),
    ("search[latency-unit]", [*SEARCH, "--latency", "80 parsecs"], None),
    ("search[two-latencies-one-target]", [*SEARCH, "--latency", "80", "--latency", "90", "--target", "pixel",
                                          "--target", "x86", "--target", "pixel"], None),
    ("search[budget-zero]", [*SEARCH, "--latency", "80", "--budget", "0"], None),
    ("search[budget-negative]", [*SEARCH, "--latency", "80", "--budget", "-1"], None),
    ("search[budget-text]", [*SEARCH, "--latency", "80", "--budget", "many"], None),
    ("search[seed-negative]", [*SEARCH, "--latency", "80", "--seed", "-1"], None),
    ("search[top-k-zero]", [*SEARCH, "--latency", "80", "--top-k", "0"], None),
    ("search[unknown-space]", [*SEARCH, "--latency", "80", "--space", "nope"], None),
    ("search[unknown-target]", [*SEARCH, "--latency", "80", "--target", "toaster"], None),
    ("search[unknown-strategy]", [*SEARCH, "--latency", "80", "--strategy", "genius"], None),
    ("search[unknown-reward]", [*SEARCH, "--latency", "80", "--reward", "maximal"], None),
    ("search[mnas-positive-w]", [*SEARCH, "--latency", "80", "--reward", "mnas", "--w", "0.5"], None),
    ("search[unknown-accuracy]", [*SEARCH, "--latency", "80", "--accuracy", "oracle"], None),
    ("search[predictor-without-path]", [*SEARCH, "--latency", "80", "--accuracy", "predictor"], None),
    ("search[ofa-predictor-garbage]", [*SEARCH, "--latency", "80", "--accuracy", "ofa-predictor:{F:png.json}"], None),
    ("search[param-no-equals]", [*SEARCH, "--latency", "80", "--param", "population"], None),
    ("search[param-unknown]", [*SEARCH, "--latency", "80", "--param", "bogus=1"], None),
    ("search[margin-too-big]", [*SEARCH, "--latency", "80", "--latency-margin", "2"], None),
    ("search[space-and-module]", [*SEARCH, "--latency", "80", "--space", "mbconv", "--space-module",
                                  "experiments/custom_space.py:TinyChain"], None),
    ("search[default-space-named-and-module]", [*SEARCH, "--latency", "80", "--space", "ofa", "--space-module",
                                                "experiments/custom_space.py:TinyChain"], None),
    ("search[space-module-missing]", [*SEARCH, "--latency", "80", "--space-module", "{tmp}/nope.py:X"], None),
    ("search[space-module-binary]", [*SEARCH, "--latency", "80", "--space-module", "{F:binary.json}:X"], None),
    ("search[export-choice]", [*SEARCH, "--latency", "80", "--export", "tflite"], None),
]

SWEEP_FILE = "{tmp}/good.yaml"
SWEEP_CASES = [
    ("sweep[same-folder-as-file]", ["sweep", "{tmp}/sweepdir/sweep.yaml", "--out", "{tmp}/sweepdir"], None),
    ("sweep[out-not-empty]", ["sweep", SWEEP_FILE, "--out", "{earlier}"], None),
    ("sweep[out-is-a-file]", ["sweep", SWEEP_FILE, "--out", "{earlier}/result.json"], None),
    ("sweep[out-unwritable]", ["sweep", SWEEP_FILE, "--out", "/proc/hwnas-no/sweep"], None),
    ("sweep[cpus-zero]", ["sweep", SWEEP_FILE, "--out", "{tmp}/sw", "--cpus", "0"], None),
    ("sweep[no-file]", ["sweep", "--out", "{tmp}/sw"], None),
    ("sweep[resume-with-file]", ["sweep", "--resume", "{earlier}", SWEEP_FILE], None),
    ("sweep[resume-not-sweep]", ["sweep", "--resume", "{earlier}"], None),
    ("sweep[resume-missing]", ["sweep", "--resume", "{tmp}/nope"], None),
    ("sweep[resume-damaged-state]", ["sweep", "--resume", "{tmp}/badsweep"], None),
    ("sweep[missing-predictor]", ["sweep", "{tmp}/bad_predictor.yaml", "--out", "{tmp}/sw"], None),
    ("sweep[bogus-strategy-param]", ["sweep", "{tmp}/bad_param.yaml", "--out", "{tmp}/sw"], None),
    ("sweep[params-for-unknown-strategy]", ["sweep", "{tmp}/bad_strategy_key.yaml", "--out", "{tmp}/sw"], None),
    ("sweep[budget-below-smallest]", ["sweep", "{tmp}/too_fast.yaml", "--out", "{tmp}/sw"], None),
]

SWEEP_FILES = {
    "good.yaml": "fixed: {space: ofa, budget: 50, target: pixel}\ngrid: {latency_ms: [60]}\n",
    "sweepdir/sweep.yaml": "fixed: {space: ofa, budget: 50, target: pixel}\ngrid: {latency_ms: [60]}\n",
    "bad_predictor.yaml": "fixed: {budget: 50, latency_ms: 60, accuracy: 'predictor:/nonexistent.json'}\n",
    "bad_param.yaml": "fixed: {budget: 50, latency_ms: 60, strategy_params: {evolution: {population: 30, bogus: 1}}}\n",
    "bad_strategy_key.yaml": "fixed: {budget: 50, latency_ms: 60, strategy_params: {evolutoin: {population: 30}}}\n",
    "too_fast.yaml": "fixed: {budget: 50, target: pixel}\ngrid: {latency_ms: [60, 0.5]}\n",
    "badsweep/sweep.json": '{"config": {"grid": 5}}',
}

OTHER_CASES = [
    ("predict[unknown-device]", ["predict", "--space", "ofa", "--device", "toaster", "--arch", "{tmp}/arch.json"], None),
    ("predict[unknown-space]", ["predict", "--space", "nope", "--device", "pixel", "--arch", "{tmp}/arch.json"], None),
    ("export[bad-extension]", ["export", "--space", "ofa", "--arch", "{tmp}/arch.json", "--out", "{tmp}/m.tflite"], None),
    ("fit-predictor[seed-negative]", ["fit-predictor", "--space", "ofa", "--data", "{tmp}/pairs.csv", "--out",
                                      "{tmp}/p.json", "--seed", "-1"], None),
    ("fit-predictor[test-frac-2]", ["fit-predictor", "--space", "ofa", "--data", "{tmp}/pairs.csv", "--out",
                                    "{tmp}/p.json", "--test-frac", "2"], None),
    ("fit-predictor[unknown-space]", ["fit-predictor", "--space", "nope", "--data", "{tmp}/pairs.csv", "--out",
                                      "{tmp}/p.json"], None),
    ("fit-predictor[kind]", ["fit-predictor", "--space", "ofa", "--data", "{tmp}/pairs.csv", "--out",
                             "{tmp}/p.json", "--kind", "svm"], None),
    ("import-table[no-files]", ["import-table", "--format", "ofa", "--device", "x"], None),
    ("import-table[bad-format]", ["import-table", "--format", "tflite", "--device", "x", "{F:bad_yaml.yaml}"], None),
    ("import-table[python-tag]", ["import-table", "--format", "ofa", "--device", "x", "--out", "{earlier}",
                                  "{F:yaml_python_tag.yaml}"], None),
    ("measure[unknown-device]", ["measure", "--device", "toaster", "--space", "ofa", "--arch", "{tmp}/arch.json"], None),
    ("calibrate[unknown-device]", ["calibrate", "--device", "toaster", "--space", "ofa"], None),
    ("calibrate[n-zero]", ["calibrate", "--device", "x86", "--space", "ofa", "--n", "0"], None),
    ("validate-latency[unknown-space]", ["validate-latency", "--device", "x86", "--space", "nope"], None),
    ("validate-latency[n-negative]", ["validate-latency", "--device", "x86", "--space", "ofa", "--n", "-3"], None),
    ("profile[unknown-space]", ["profile", "--device", "mybox", "--space", "nope"], None),
    ("profile[bad-device-name]", ["profile", "--device", "My Box!", "--space", "ofa"], None),
    ("calibrate[seed-negative]", ["calibrate", "--device", "x86", "--space", "ofa", "--n", "1", "--seed", "-1"], None),
    ("validate-latency[seed-negative]", ["validate-latency", "--device", "x86", "--space", "ofa", "--n", "1",
                                         "--seed", "-1"], None),
    ("profile[seed-negative]", ["profile", "--device", "mybox", "--space", "ofa", "--limit", "1", "--seed", "-1"], None),
    ("profile[threads-zero]", ["profile", "--device", "mybox", "--space", "ofa", "--threads", "0"], None),
    ("profile[limit-negative]", ["profile", "--device", "mybox", "--space", "ofa", "--limit=-1"], None),
    ("profile[bad-resolution]", ["profile", "--device", "mybox", "--space", "ofa", "--resolutions", "7"], None),
    ("profile[bad-provider]", ["profile", "--device", "mybox", "--space", "ofa", "--provider", "tpu"], None),
    ("measure[rounds-zero]", ["measure", "--device", "x86", "--space", "ofa", "--arch", "{tmp}/arch.json",
                              "--rounds", "0"], None),
    ("measure[warmup-negative]", ["measure", "--device", "x86", "--space", "ofa", "--arch", "{tmp}/arch.json",
                                  "--warmup=-1"], None),
    ("export[out-unwritable]", ["export", "--space", "ofa", "--arch", "{tmp}/arch.json", "--out",
                                "/proc/hwnas-no/m.onnx"], None),
    ("convert[space-unknown]", ["convert", "{tmp}/arch.json", "--space", "nope"], None),
    ("top[no-command]", [], None),
    ("top[unknown-command]", ["serach"], None),
]

CASES = _file_cases() + RESUME_CASES + SEARCH_CASES + SWEEP_CASES + OTHER_CASES

# a few run as real processes: the installed entry point behaves as the in-process one
SUBPROCESS = {"search[out-not-empty]", "resume[truncated-checkpoint]", "sweep-file[binary.json]",
              "predict-arch[deep_json.json]", "import-table[deep_yaml.yaml]", "top[unknown-command]"}


def test_the_table_is_large_and_ids_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small finished search run folder (copied per test)."""
    import nas

    run = tmp_path_factory.mktemp("finished") / "run"
    nas.search("ofa", "pixel", 80, budget=200, seed=0, out=run, plot=False)
    return run


def _snapshot(folder: Path) -> dict[str, bytes]:
    # the run-folder lock records the pid of its last holder: not a result
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".hwnas.lock"}


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _expand(arg: str, tmp: Path, earlier: Path, run: Path) -> str:
    if arg.startswith("{F:") or "{F:" in arg:
        head, _, rest = arg.partition("{F:")
        name, _, tail = rest.partition("}")
        path = tmp / "hostile" / name
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(HOSTILE_FILES[name])
        return head + str(path) + tail
    return arg.format(tmp=tmp, earlier=earlier, run=run)


@pytest.mark.parametrize("case_id, argv, damage", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2(case_id, argv, damage, tmp_path, finished_run, nas_cli):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "result.json").write_text('{"mine": true}\n')
    (earlier / "notes.txt").write_text("earlier work\n")
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    if damage is not None:
        damage(run)
    for name, text in SWEEP_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [160]}
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    (tmp_path / "arch_configs.json").write_text('{"mobilenet_v2_1.0": {"blocks": []}}')
    quoted = json.dumps(arch).replace('"', '""')
    (tmp_path / "pairs.csv").write_text("arch,top1\n" + "".join(f'"{quoted}",0.{50 + i}\n' for i in range(40)))
    before = {"earlier": _snapshot(earlier), "run": _snapshot(run)}
    listing = {"earlier": _listing(earlier), "run": _listing(run)}

    args = [_expand(a, tmp_path, earlier, run) for a in argv]
    if case_id in SUBPROCESS:
        env = {**os.environ, "NAS_DEBUG": ""}
        p = subprocess.run([NAS, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        code, err = p.returncode, p.stderr
    else:
        code, _, err = nas_cli(*args)
    assert code == 2, f"exit {code}: {err[-2000:]}"
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert err.count("\n") == 1 and err.endswith("\n"), f"{err.count(chr(10))} lines: {err[-2000:]}"
    assert len(err) < 1000, f"a {len(err)}-character error line"
    for name, folder in (("earlier", earlier), ("run", run)):
        assert _listing(folder) == listing[name], f"{name} folder changed"
        assert _snapshot(folder) == before[name], f"{name} files changed"
