"""Errors carry a stable code; the API alone maps codes to HTTP statuses, in one table."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

from api.problems import STATUS_BY_CODE, status_for
from core.case_record import ConcurrentWriteConflict
from core.contract import ContractError
from domain.errors import DomainError

#: Refusal codes that no exception class carries (a waiting fact whose release failed for a bug).
CODES_WITHOUT_A_CLASS = {"internal-error"}


def _import_every_module() -> None:
    for package in ("domain", "core", "api"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(info.name)


def _error_classes() -> Iterator[type]:
    _import_every_module()
    todo: list[type] = [DomainError, ContractError, ConcurrentWriteConflict]
    while todo:
        cls = todo.pop()
        yield cls
        todo.extend(cls.__subclasses__())


ERRORS = list(_error_classes())


class TestEachErrorHasAStableCode:
    def test_every_error_class_names_its_code(self) -> None:
        assert all(isinstance(getattr(cls, "code", None), str) and cls.code for cls in ERRORS)

    def test_every_code_in_the_table_is_an_error_the_service_raises(self) -> None:
        known = {cls.code for cls in ERRORS} | CODES_WITHOUT_A_CLASS
        assert set(STATUS_BY_CODE) - known == set()

    def test_a_code_not_in_the_table_is_a_broken_rule(self) -> None:
        assert status_for("risk-level-out-of-range") == 422


class TestNoErrorBelowTheApiKnowsHttp:
    @pytest.mark.parametrize("cls", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
    def test_the_error_carries_no_http_status(self, cls: type) -> None:
        assert "status" not in vars(cls), f"{cls.__qualname__} carries an HTTP status: add its code to STATUS_BY_CODE"
