"""Every registered component passes its conformance suite; the registry itself behaves."""

from __future__ import annotations

import pytest

import edgeauto
from edgeauto.errors import ConfigError, UnknownComponent
from edgeauto.registry import Registry, suggest
from edgeauto.sparse import SPARSE_METHODS
from edgeauto.testing import (
    check_criterion,
    check_pruner,
    check_runtime,
    check_space,
    check_sparse_method,
    check_strategy,
)


def test_registries_are_not_empty() -> None:
    assert {"fbnet-lite", "fbnet-micro"} <= set(edgeauto.list_spaces())
    assert {"random", "evolution"} <= set(edgeauto.list_strategies())
    assert {"uniform", "netadapt"} <= set(edgeauto.list_pruners())
    assert {"l1", "l2", "taylor", "taylor2", "hessian", "ispasp", "random"} <= set(
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
