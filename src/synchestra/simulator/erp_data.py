"""The simulated ERP: four collections of records that tests can change.

Records are seeded deterministically; :meth:`ErpStore.create`,
:meth:`~ErpStore.update` and :meth:`~ErpStore.delete` change them the way a
busy ERP would, each change stamping ``updated_at`` strictly later than every
stamp before it (so an incremental sync always sees it, even within one
second or with a wall clock behind the seeded data), unless a test passes
an explicit ``stamp`` to :meth:`~ErpStore.update` to reuse an instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from synchestra.simulator.config import ErpSizes
from synchestra.simulator.seeding import rng_for
from synchestra.simulator.timefmt import iso_z, parse_iso, utc_now

COLLECTIONS = ("customers", "products", "prices", "orders")
CURRENCIES = ("USD", "USD", "USD", "CAD", "EUR")
CATEGORIES = ("tires", "brakes", "filters", "lighting", "electrical", "fluids")
ORDER_STATES = ("new", "confirmed", "shipped", "delivered", "cancelled")
FIRST_NAMES = ("Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lou")
LAST_NAMES = ("Baker", "Diaz", "Fox", "Hart", "Kahn", "Lopez", "Moss", "Nash", "Ortiz", "Shaw")
CITIES = ("Austin", "Boise", "Chicago", "Denver", "El Paso", "Fresno", "Gary", "Houston")

Record = dict[str, Any]


class UnknownCollection(KeyError):
    """Not one of the ERP's collections."""


class ErpStore:
    """Collections of records keyed by integer ``id``, listed in id order."""

    def __init__(
        self,
        seed: int,
        sizes: ErpSizes,
        as_of: date,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._now = now
        self._data: dict[str, dict[int, Record]] = {}
        self._next_id: dict[str, int] = {}
        horizon = datetime.combine(as_of, time(), tzinfo=UTC)
        for name in COLLECTIONS:
            count = getattr(sizes, name)
            rng = rng_for(seed, "erp", name)
            rows = [_seed_record(name, i, rng, horizon, sizes) for i in range(1, count + 1)]
            self._data[name] = {row["id"]: row for row in rows}
            self._next_id[name] = count + 1
        stamps = [parse_iso(r["updated_at"]) for rows in self._data.values() for r in rows.values()]
        self._last_stamp = max(stamps, default=horizon)

    @property
    def collections(self) -> tuple[str, ...]:
        return COLLECTIONS

    def records(self, collection: str, since: datetime | None = None) -> list[Record]:
        """Copies of the records in id order, only those updated at or after ``since``."""
        rows = self._table(collection)
        chosen = [
            dict(rows[key])
            for key in sorted(rows)
            if since is None or parse_iso(rows[key]["updated_at"]) >= since
        ]
        return chosen

    def get(self, collection: str, record_id: int) -> Record:
        """A copy of one record; raises KeyError."""
        return dict(self._table(collection)[record_id])

    def create(self, collection: str, fields: Mapping[str, Any]) -> Record:
        """Add a record with the next id and a fresh ``updated_at``; returns it."""
        table = self._table(collection)
        record_id = self._next_id[collection]
        self._next_id[collection] = record_id + 1
        given = {k: v for k, v in fields.items() if k not in ("id", "updated_at")}
        record = {"id": record_id, **given, "updated_at": self._stamp()}
        table[record_id] = record
        return dict(record)

    def update(
        self,
        collection: str,
        record_id: int,
        fields: Mapping[str, Any],
        *,
        stamp: datetime | None = None,
    ) -> Record:
        """Change fields of a record (not its id) and advance its ``updated_at``.

        ``stamp`` sets ``updated_at`` to exactly that instant instead, even one
        already used: two changes within the same second of a busy ERP, which
        an incremental client must not lose.
        """
        table = self._table(collection)
        if record_id not in table:
            raise KeyError(f"{collection} has no record {record_id}")
        changes = {k: v for k, v in fields.items() if k not in ("id", "updated_at")}
        when = self._stamp() if stamp is None else self._restamp(stamp)
        table[record_id] = {**table[record_id], **changes, "updated_at": when}
        return dict(table[record_id])

    def delete(self, collection: str, record_id: int) -> None:
        """Remove a record; raises KeyError when it is not there."""
        table = self._table(collection)
        if record_id not in table:
            raise KeyError(f"{collection} has no record {record_id}")
        del table[record_id]

    def _table(self, collection: str) -> dict[int, Record]:
        try:
            return self._data[collection]
        except KeyError:
            raise UnknownCollection(collection) from None

    def _restamp(self, stamp: datetime) -> str:
        """``stamp`` as ``updated_at``; later fresh stamps stay after it."""
        moment = stamp.astimezone(UTC).replace(microsecond=0)
        self._last_stamp = max(moment, self._last_stamp)
        return iso_z(moment)

    def _stamp(self) -> str:
        """Now (to the second), but always at least a second after the last stamp."""
        now = self._now().astimezone(UTC).replace(microsecond=0)
        self._last_stamp = max(now, self._last_stamp + timedelta(seconds=1))
        return iso_z(self._last_stamp)


def _seed_record(
    name: str, record_id: int, rng: random.Random, horizon: datetime, sizes: ErpSizes
) -> Record:
    updated = horizon - timedelta(seconds=rng.randint(60, 180 * 86_400))
    fields = _FIELDS[name](rng, record_id, sizes, updated)
    return {"id": record_id, **fields, "updated_at": iso_z(updated)}


def _customer(rng: random.Random, record_id: int, sizes: ErpSizes, updated: datetime) -> Record:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{record_id}@example.com".lower(),
        "city": rng.choice(CITIES),
        "country": "US",
    }


def _product(rng: random.Random, record_id: int, sizes: ErpSizes, updated: datetime) -> Record:
    category = rng.choice(CATEGORIES)
    return {
        "sku": f"SKU-{record_id:05d}",
        "name": f"{category.title()} part {record_id}",
        "category": category,
        "active": rng.random() > 0.1,
    }


def _price(rng: random.Random, record_id: int, sizes: ErpSizes, updated: datetime) -> Record:
    return {
        "product_id": rng.randint(1, max(sizes.products, 1)),
        "currency": rng.choice(CURRENCIES),
        "amount": f"{rng.randint(100, 250_000) / 100:.2f}",
        "valid_from": (updated - timedelta(days=rng.randint(0, 60))).date().isoformat(),
    }


def _order(rng: random.Random, record_id: int, sizes: ErpSizes, updated: datetime) -> Record:
    ordered = updated - timedelta(minutes=rng.randint(0, 30 * 24 * 60))
    return {
        "customer_id": rng.randint(1, max(sizes.customers, 1)),
        "status": rng.choice(ORDER_STATES),
        "total": f"{rng.randint(500, 900_000) / 100:.2f}",
        "currency": rng.choice(CURRENCIES),
        "ordered_at": iso_z(ordered),
    }


_FIELDS: dict[str, Callable[[random.Random, int, ErpSizes, datetime], Record]] = {
    "customers": _customer,
    "products": _product,
    "prices": _price,
    "orders": _order,
}
