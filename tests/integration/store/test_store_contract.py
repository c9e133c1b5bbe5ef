"""The store's boundary: it implements its contract and hands out core values only."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from typing import Any

from synchestra.connectors.context import SyncContext
from synchestra.store import Store
from synchestra.store.abc import DataStore, RecordStore

CONSTRUCTORS = {"open"}
"""Public methods of :class:`Store` that are not part of the contract (how one is made)."""


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _types_in(hint: Any) -> Iterator[Any]:
    """``hint`` and every type nested in it (``list[Record]`` -> list, Record)."""
    yield hint
    origin = typing.get_origin(hint)
    if origin is not None:
        yield origin
    for arg in typing.get_args(hint):
        yield from _types_in(arg)


def test_every_public_store_method_is_in_the_contract() -> None:
    assert not getattr(Store, "__abstractmethods__", frozenset())
    extra = set(_public_methods(Store)) - set(_public_methods(DataStore)) - CONSTRUCTORS
    assert extra == set(), "state these methods' behaviour in store/abc.py"


def test_store_methods_take_and_return_no_sqlalchemy_type() -> None:
    leaks = []
    for name, method in _public_methods(Store).items():
        if name in CONSTRUCTORS:
            continue
        for where, hint in typing.get_type_hints(method).items():
            for found in _types_in(hint):
                module = getattr(found, "__module__", "") or ""
                if module.startswith("sqlalchemy"):
                    leaks.append(f"Store.{name} {where}: {found!r}")
    assert leaks == []


def test_the_check_sees_a_sqlalchemy_type() -> None:
    from sqlalchemy import Row

    assert any(t is Row for t in _types_in(list[Row[Any]]))


def test_a_source_sees_only_the_record_store() -> None:
    hints = typing.get_type_hints(SyncContext.__init__)
    assert hints["store"] is RecordStore
    assert set(_public_methods(RecordStore)) == {"upsert_records", "all_records"}
