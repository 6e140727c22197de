"""Every registered component passes its conformance suite; the registry itself behaves."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import adb_profile, micro_table_path, shared_data

import edgeauto
from edgeauto.devices.profile import DeviceProfile, load_profile
from edgeauto.errors import ConfigError, UnknownComponent
from edgeauto.grow import GROWTH_INITS
from edgeauto.latency.importers import IMPORTERS
from edgeauto.latency.model import LATENCY_MODELS
from edgeauto.latency.runners import RUNNERS
from edgeauto.latency.table import LatencyTable
from edgeauto.registry import Registry, suggest
from edgeauto.search.executors import EXECUTORS
from edgeauto.spaces import SearchSpace
from edgeauto.sparse import SPARSE_METHODS
from edgeauto.testing import (
    CHECKS,
    CheckSkipped,
    LatencyFixture,
    check_criterion,
    check_executor,
    check_growth_init,
    check_importer,
    check_latency_model,
    check_pruner,
    check_runner,
    check_runtime,
    check_space,
    check_sparse_method,
    check_strategy,
)


def test_registries_are_not_empty() -> None:
    assert {"fbnet-lite", "fbnet-micro"} <= set(edgeauto.list_spaces())
    assert {"random", "evolution"} <= set(edgeauto.list_strategies())
    assert {"uniform", "netadapt"} <= set(edgeauto.list_pruners())
    assert {"l1", "group-l1", "l2", "taylor", "taylor2", "hessian", "ispasp", "random"} <= set(
        edgeauto.list_criteria()
    )
    assert {"litert", "onnxruntime"} <= set(edgeauto.list_runtimes())


@pytest.mark.parametrize("name", edgeauto.list_spaces())
def test_space_conformance(name: str) -> None:
    check_space(name)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 5, 7)])
@pytest.mark.parametrize("name", edgeauto.list_spaces())
def test_space_conformance_other_shapes(name: str, shape: tuple[int, int, int]) -> None:
    check_space(name, shape, classes=4)


@pytest.mark.parametrize("name", edgeauto.list_strategies())
def test_strategy_conformance(name: str) -> None:
    check_strategy(name)


@pytest.mark.parametrize("criterion", ["l1", "taylor"])
@pytest.mark.parametrize("name", edgeauto.list_pruners())
def test_pruner_conformance(name: str, criterion: str) -> None:
    check_pruner(name, criterion)


@pytest.mark.parametrize("name", edgeauto.list_criteria())
def test_criterion_conformance(name: str) -> None:
    check_criterion(name)


@pytest.mark.parametrize("name", edgeauto.list_runtimes())
def test_runtime_conformance(name: str) -> None:
    check_runtime(name)


@pytest.mark.parametrize("name", SPARSE_METHODS.names())
def test_sparse_method_conformance(name: str, digits) -> None:
    check_sparse_method(name, digits)


@pytest.mark.parametrize("name", GROWTH_INITS.names())
def test_growth_init_conformance(name: str) -> None:
    check_growth_init(name)


@pytest.fixture(scope="module")
def latency_fixture(micro_tables: Path, micro_space: SearchSpace) -> Iterator[LatencyFixture]:
    """The session's measured micro table (a fresh copy in memory) and its space."""
    fixture = LatencyFixture(LatencyTable.load(micro_table_path(micro_tables)), micro_space)
    yield fixture
    if fixture.timer is not None:
        fixture.timer.close()


@pytest.mark.parametrize("name", LATENCY_MODELS.names())
def test_latency_model_conformance(name: str, latency_fixture: LatencyFixture) -> None:
    check_latency_model(name, latency_fixture)


def _skipping(check: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``check``; a component that cannot run here is a skip with the check's reason."""
    try:
        check(*args, **kwargs)
    except CheckSkipped as exc:
        pytest.skip(str(exc))


@pytest.fixture
def fake_phone(phone: dict[str, Path]) -> DeviceProfile:
    """No phone is attached here: the adb runner talks to conftest's fake adb (``phone``),
    which runs the phone's side on this machine (benchmark_model prints recorded output)."""
    phone["workdir"].mkdir(parents=True)
    return adb_profile(phone)


@pytest.mark.parametrize("name", RUNNERS.names())
def test_runner_conformance(name: str, request: pytest.FixtureRequest) -> None:
    profile = request.getfixturevalue("fake_phone") if name == "adb" else None
    _skipping(check_runner, name, profile)


def test_runner_check_skips_without_a_device() -> None:
    with pytest.raises(CheckSkipped, match="needs a reachable device"):
        check_runner("adb")


#: Per registered importer: a published source under ../shared/data/luts, its device and space.
IMPORTER_SOURCES: dict[str, tuple[str, str, str, tuple[int, int, int], int]] = {
    "ofa-yaml": ("ofa-note10", "samsung-note10", "ofa-mbv3", (3, 224, 224), 1000),
    "fbnet-json": ("fbnet-raspi4/lookup_table_pi.json", "raspberry-pi-4", "fbnet-cifar",
                   (3, 32, 32), 10),
}  # fmt: skip


@pytest.mark.parametrize("name", IMPORTERS.names())
def test_importer_conformance(name: str) -> None:
    assert name in IMPORTER_SOURCES, f"importer {name!r}: add a published source to check it on"
    source, device, space, shape, classes = IMPORTER_SOURCES[name]
    check_importer(
        name, shared_data() / "luts" / source, load_profile(device), space, shape, classes
    )


#: Per registered executor: the options it is checked with (Ray: a local cluster, 2 CPUs).
EXECUTOR_OPTIONS: dict[str, dict[str, Any]] = {"inprocess": {}, "ray": {"workers": 2}}


@pytest.mark.parametrize("name", EXECUTORS.names())
def test_executor_conformance(name: str) -> None:
    assert name in EXECUTOR_OPTIONS, f"executor {name!r}: say how to construct it for its check"
    check_executor(name, **EXECUTOR_OPTIONS[name])


#: Files of the package that are scripts shipped elsewhere, not importable in place.
STANDALONE = {"edgeauto.bundle.infer"}  # copied next to the bundle's preprocess.json


def _registries() -> Iterator[tuple[str, Registry]]:
    """Every module-level :class:`Registry` of the ``edgeauto`` package (all submodules
    imported), once each, as ``(module.name, registry)``."""
    seen: set[int] = set()
    for info in pkgutil.walk_packages(edgeauto.__path__, "edgeauto."):
        if info.name.endswith("__main__") or info.name in STANDALONE:
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, Registry) and id(value) not in seen:
                seen.add(id(value))
                yield f"{info.name}.{attr}", value


def test_every_registry_has_a_conformance_check() -> None:
    found = dict(_registries())
    roles = {reg.role: where for where, reg in found.items()}
    assert len(roles) == len(found), f"two registries share a role: {sorted(found)}"
    unchecked = sorted(f"{where} ({role!r})" for role, where in roles.items() if role not in CHECKS)
    assert not unchecked, f"registries without a check in edgeauto.testing.CHECKS: {unchecked}"
    stale = sorted(set(CHECKS) - set(roles))
    assert not stale, f"edgeauto.testing.CHECKS names roles no registry has: {stale}"
    assert {"latency model", "runner", "table importer", "executor", "growth init"} <= set(roles)


def test_registry_rejects_duplicates() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register("a")(2)
    assert reg.get("a") == 1
    assert reg.names() == ["a"]


def test_registry_lists_sorted_and_contains() -> None:
    reg: Registry[str] = Registry("widget")
    for name in ("zeta", "alpha", "mid"):
        reg.register(name)(name.upper())
    assert reg.names() == ["alpha", "mid", "zeta"]
    assert list(reg) == ["alpha", "mid", "zeta"]
    assert "mid" in reg and "nope" not in reg


def test_registry_unknown_name_suggests() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("evolution")(1)
    reg.register("random")(2)
    with pytest.raises(UnknownComponent) as exc:
        reg.get("evolutoin")
    msg = str(exc.value)
    assert "unknown widget 'evolutoin'" in msg
    assert "did you mean 'evolution'" in msg
    assert "available: evolution, random" in msg
    assert isinstance(exc.value, ConfigError)


def test_registry_unknown_name_without_close_match() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("random")(1)
    with pytest.raises(UnknownComponent) as exc:
        reg.get("xyzzy-qqq")
    assert "did you mean" not in str(exc.value)
    assert "available: random" in str(exc.value)


@pytest.mark.parametrize(
    ("lister", "getter", "typo", "expected"),
    [
        (
            edgeauto.list_spaces,
            lambda n: edgeauto.get_space(n, (1, 8, 8), 10),
            "fbnet-mikro",
            "fbnet-micro",
        ),
        (edgeauto.list_strategies, edgeauto.STRATEGIES.get, "evolutoin", "evolution"),
        (edgeauto.list_pruners, edgeauto.PRUNERS.get, "netadpt", "netadapt"),
        (edgeauto.list_criteria, edgeauto.CRITERIA.get, "taylr", "taylor"),
        (edgeauto.list_runtimes, edgeauto.RUNTIMES.get, "litrt", "litert"),
    ],
)
def test_real_registries_suggest(lister, getter, typo: str, expected: str) -> None:
    assert typo not in lister()
    with pytest.raises(UnknownComponent, match=f"did you mean .*'{expected}'"):
        getter(typo)


def test_suggest() -> None:
    assert suggest("digit", ["digits", "mnist5k"]) == "did you mean 'digits'? "
    assert suggest("qqqq", ["digits", "mnist5k"]) == ""
