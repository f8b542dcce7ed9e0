"""The device registry survives a bad user profile, and no command writes a name or alias already taken."""

from __future__ import annotations

import json

import pytest



def _write(device_dir, name, text):
    device_dir.mkdir(parents=True, exist_ok=True)
    (device_dir / f"{name}.yaml").write_text(text)


def _clashing_profile(device_dir, name="t1", alias="pixel"):
    # What `import-table --device t1 --alias pixel` used to write: an alias a shipped profile holds.
    _write(device_dir, name, f"name: {name}\naliases: [{alias}]\nsource: {{kind: imported}}\n"
                             "tables:\n  ofa:\n    entries: {{}}\n".replace("{{}}", "{}"))


@pytest.mark.parametrize("text", [
    None,  # alias clash, written below
    "name: [unclosed\n",
    "just a string\n",
    "name: other\nsource: {kind: imported}\n",  # name does not match the file
    "\udcff",  # not UTF-8
])
def test_a_broken_user_profile_is_skipped_and_listed(device_dir, nas_cli, text, tmp_path):
    if text is None:
        _clashing_profile(device_dir)
    elif text == "\udcff":
        device_dir.mkdir(parents=True)
        (device_dir / "t1.yaml").write_bytes(b"\xff\xfe\x00garbage\x81")
    else:
        _write(device_dir, "t1", text)
    from latency_predictors.registry import scan_profiles

    profiles, broken = scan_profiles()
    assert [b.name for b in broken] == ["t1"]
    assert {"pixel1", "x86-2core-ort"} <= {r.profile.name for r in profiles}
    # Every other device keeps working: devices, predict and search.
    code, out, err = nas_cli("devices")
    assert code == 0 and "t1 - BROKEN" in out and "pixel1" in out, err
    code, out, _ = nas_cli("devices", "--json")
    rows = {r["name"]: r for r in json.loads(out)["devices"]}
    assert code == 0 and "broken" in rows["t1"] and "broken" not in rows["pixel1"]
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"ops": ["k3e3"] * 21}))
    code, out, err = nas_cli("predict", "--space", "proxyless", "--device", "pixel", "--arch", arch)
    assert code == 0 and "pixel1" in out, err
    assert err.count("\n") == 1 and "skipping broken device profile 't1'" in err
    # The broken one, asked for by name, says why.
    code, _, err = nas_cli("predict", "--space", "proxyless", "--device", "t1", "--arch", arch)
    assert code == 2 and "is broken" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, taken", [
    (["--device", "t1", "--alias", "pixel"], "'pixel'"),
    (["--device", "t1", "--alias", "x86-2core-ort"], "'x86-2core-ort'"),
    (["--device", "pixel"], "'pixel'"),
    (["--device", "x86"], "'x86'"),
])
def test_import_table_refuses_a_taken_name_before_writing(shared_data, device_dir, nas_cli, argv, taken):
    files = sorted((shared_data / "ofa").glob("note10_160_lookup_table.yaml"))
    code, _, err = nas_cli("import-table", "--format", "ofa", *files, *argv)
    assert code == 2 and taken in err and "already taken" in err and err.count("\n") == 1, err
    assert not device_dir.exists() or not list(device_dir.iterdir())
    code, _, err = nas_cli("devices")
    assert code == 0 and err == ""


def test_import_table_may_extend_its_own_device_and_reuse_its_alias(shared_data, nas_cli):
    files = sorted((shared_data / "ofa").glob("note10_1[67]*_lookup_table.yaml"))
    assert nas_cli("import-table", "--format", "ofa", files[0], "--device", "t1", "--alias", "tee")[0] == 0
    code, _, err = nas_cli("import-table", "--format", "ofa", files[1], "--device", "t1", "--alias", "tee")
    assert code == 0, err
    code, _, err = nas_cli("import-table", "--format", "ofa", files[1], "--device", "t2", "--alias", "tee")
    assert code == 2 and "'tee' is already taken by device 't1'" in err


def test_fit_device_refuses_a_taken_alias_before_fitting(shared_data, device_dir, nas_cli):
    trim = shared_data / "proxylessnas" / "mobile_trim.yaml"
    code, _, err = nas_cli("fit-device", "--name", "phone2", "--alias", "x86", "--blocks", trim, "--no-eval")
    assert code == 2 and "'x86' is already taken by device 'x86-2core-ort'" in err and err.count("\n") == 1
    assert not device_dir.exists() or not list(device_dir.iterdir())


def test_profile_refuses_a_taken_alias_before_measuring(device_dir, nas_cli):
    code, _, err = nas_cli("profile", "--device", "mine", "--alias", "pixel", "--space", "proxyless",
                           "--limit", "1", "--quiet")
    assert code == 2 and "'pixel' is already taken by device 'pixel1'" in err and err.count("\n") == 1
    assert not device_dir.exists() or not list(device_dir.iterdir())
