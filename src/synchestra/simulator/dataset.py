"""The simulated FMCSA registries: every carrier's documents, derived on demand.

Nothing is generated up front: each document is drawn from the seed when
asked for, so a simulator with 100,000 carriers starts at once. Violation
rows (up to thousands per carrier) are kept in a small LRU cache because
paging asks for the same carrier several times in a row.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from synchestra.simulator.basics import basics_entries
from synchestra.simulator.carriers import CarrierProfile, make_profile
from synchestra.simulator.census import carrier_document
from synchestra.simulator.config import SimulatorConfig
from synchestra.simulator.snapshot import snapshot_document
from synchestra.simulator.violations import CarrierSlot, row_count, violation_rows

ROW_CACHE_SIZE = 64


class UnknownCarrier(KeyError):
    """The DOT number is not one of the simulated carriers."""


class FmcsaData:
    """Deterministic carrier data: equal configs give equal documents."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.sms_run = 0
        count, big = config.carriers, config.big_carriers
        self._big_indexes = frozenset(i * count // big for i in range(big)) if big else frozenset()
        self._id_stride = max(4096, config.big_carrier_rows + 1)
        self._rows: OrderedDict[int, list[dict[str, str]]] = OrderedDict()
        self._counts: dict[int, int] = {}

    @property
    def dots(self) -> list[int]:
        """Every simulated DOT number, ascending."""
        c = self.config
        return [c.first_dot + i * c.dot_step for i in range(c.carriers)]

    @property
    def big_dots(self) -> list[int]:
        """The carriers with ``big_carrier_rows`` violation rows (more than one page)."""
        c = self.config
        return [c.first_dot + i * c.dot_step for i in sorted(self._big_indexes)]

    def index_of(self, dot: int) -> int | None:
        """The carrier's position, or None when ``dot`` is not simulated."""
        c = self.config
        offset = dot - c.first_dot
        if offset < 0 or offset % c.dot_step or offset // c.dot_step >= c.carriers:
            return None
        return offset // c.dot_step

    def has(self, dot: int) -> bool:
        return self.index_of(dot) is not None

    def profile(self, dot: int) -> CarrierProfile:
        """The facts of one carrier; raises :class:`UnknownCarrier`."""
        if not self.has(dot):
            raise UnknownCarrier(dot)
        return make_profile(self.config.seed, dot, self.config.as_of)

    def carrier(self, dot: int) -> dict[str, Any]:
        """QCMobile's ``content.carrier`` for ``dot``."""
        return carrier_document(self.profile(dot))

    def basics(self, dot: int) -> list[dict[str, Any]]:
        """QCMobile's ``/basics`` ``content`` list for ``dot`` at the current SMS run."""
        return basics_entries(self.profile(dot), self.config.seed, self.sms_run)

    def snapshot(self, dot: int) -> dict[str, Any]:
        """SaferWebAPI's snapshot body for ``dot``."""
        return snapshot_document(self.profile(dot), self.config.as_of)

    def advance_sms_run(self) -> int:
        """Publish a new monthly SMS run: BASIC values and ``basicsRunDate`` change."""
        self.sms_run += 1
        return self.sms_run

    def slot(self, dot: int) -> CarrierSlot | None:
        """Where ``dot`` sits in the violation dataset, or None for an unknown DOT."""
        index = self.index_of(dot)
        if index is None:
            return None
        rows = self._counts.get(dot)
        if rows is None:
            big = index in self._big_indexes
            rows = row_count(self.config.seed, dot, big, self.config.big_carrier_rows)
            self._counts[dot] = rows
        return CarrierSlot(dot=dot, index=index, rows=rows)

    def slots(self) -> Iterator[CarrierSlot]:
        """Every carrier's slot in dataset (``:id``) order."""
        for dot in self.dots:
            found = self.slot(dot)
            if found is not None:
                yield found

    def violations(self, dot: int) -> list[dict[str, str]]:
        """The ``8mt8-2mdr`` rows of ``dot`` (fresh copies); ``[]`` for an unknown DOT."""
        slot = self.slot(dot)
        return [] if slot is None else [dict(row) for row in self.slot_rows(slot)]

    def slot_rows(self, slot: CarrierSlot) -> list[dict[str, str]]:
        """The cached rows of one slot; callers must not modify them."""
        rows = self._rows.get(slot.dot)
        if rows is None:
            c = self.config
            rows = violation_rows(c.seed, slot, c.as_of, c.duplicate_rate, self._id_stride)
            self._rows[slot.dot] = rows
            while len(self._rows) > ROW_CACHE_SIZE:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(slot.dot)
        return rows
