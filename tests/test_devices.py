"""Device profiles: every shipped profile loads, and bad ones fail with one clear line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from edgeauto.devices import DeviceProfile, list_profiles, load_profile, profiles_dir
from edgeauto.devices.profile import Connection
from edgeauto.errors import ConfigError, UnknownComponent

EXPECTED = {
    "host",
    "jetson-orin-nano",
    "pixel-7",
    "raspberry-pi-4",
    "raspberry-pi-5",
    "samsung-note10",
}


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / f"{name}.yaml"
    shutil.copy(profiles_dir() / f"{name}.yaml", dst)
    return dst


def _edit(path: Path, **changes: object) -> Path:
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(data))
    return path


def _single_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_shipped_profiles_are_listed() -> None:
    assert set(list_profiles()) >= EXPECTED
    assert list_profiles() == sorted(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_loads(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, DeviceProfile)
    assert profile.name == name
    assert profile.source == profiles_dir() / f"{name}.yaml"
    assert profile.threads <= 256
    text = (profiles_dir() / f"{name}.yaml").read_text()
    assert text.startswith("schema_version: 1\n")


def test_host_auto_fields_resolve() -> None:
    spec = load_profile("host").spec
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    assert spec.cores == cores
    assert 1 <= load_profile("host").threads <= cores  # host.yaml pins 1 thread (see comment)
    assert "auto" not in (spec.cpu, spec.isa)
    assert spec.cpu.startswith(f"{cores}x ")
    assert spec.clock_ghz > 0 and spec.ram_gb > 0
    assert "auto" not in spec.simd
    assert load_profile("host").connection.kind == "local"


def test_load_by_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "my-copy.yml"
    shutil.copy(profiles_dir() / "raspberry-pi-4.yaml", path)
    for arg in (path, str(path)):
        profile = load_profile(arg)
        assert profile.name == "raspberry-pi-4"  # by path, the stem need not match
        assert profile.source == path
        assert profile.spec.cores == 4


def test_unknown_name_suggests() -> None:
    with pytest.raises(UnknownComponent) as exc:
        load_profile("raspbery-pi-4")
    message = str(exc.value)
    assert "\n" not in message
    assert "unknown device 'raspbery-pi-4'" in message
    assert "did you mean 'raspberry-pi-4'" in message
    assert "available: host, jetson-orin-nano" in message


def test_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_profile(missing)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("schema_version: 1\nname: [broken\n")
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    message = _single_line(exc)
    assert str(path) in message and "invalid YAML" in message


def test_non_mapping_top_level(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    message = _single_line(exc)
    assert str(path) in message and "mapping" in message and "list" in message


def test_missing_field(tmp_path: Path) -> None:
    path = _edit(_copy("raspberry-pi-4", tmp_path), spec__cores=None)
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    message = _single_line(exc)
    assert str(path) in message
    assert "field 'spec.cores'" in message and "missing" in message


def test_wrong_type(tmp_path: Path) -> None:
    path = _edit(_copy("raspberry-pi-4", tmp_path), threads="many")
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    message = _single_line(exc)
    assert str(path) in message
    assert "field 'threads'" in message and "'many'" in message
    assert "fix the field in the YAML" in message


def test_several_errors_are_counted(tmp_path: Path) -> None:
    path = _edit(_copy("raspberry-pi-4", tmp_path), threads="many", runtime="tflite")
    with pytest.raises(ConfigError, match=r"\(and 1 more error\)"):
        load_profile(path)


def test_ssh_without_host(tmp_path: Path) -> None:
    path = _edit(_copy("raspberry-pi-4", tmp_path), connection__host=None)
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    message = _single_line(exc)
    assert "field 'connection'" in message and "host" in message


def test_local_with_host_is_rejected() -> None:
    with pytest.raises(ValueError, match="local connection takes no 'host'"):
        Connection(kind="local", host="example")


def test_name_must_match_stem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(profiles_dir() / "pixel-7.yaml", tmp_path / "pixel-8.yaml")
    monkeypatch.setenv("EDGEAUTO_PROFILES", str(tmp_path))
    with pytest.raises(ConfigError, match="set name: pixel-8"):
        load_profile("pixel-8")


def test_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy("pixel-7", tmp_path)
    monkeypatch.setenv("EDGEAUTO_PROFILES", str(tmp_path))
    assert profiles_dir() == tmp_path
    assert list_profiles() == ["pixel-7"]
    assert load_profile("pixel-7").source == tmp_path / "pixel-7.yaml"
    with pytest.raises(UnknownComponent, match="available: pixel-7"):
        load_profile("raspberry-pi-4")
