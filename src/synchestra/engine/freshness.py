"""Which sources are due again for a target: ``max_age``, as a pure rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta


def older_than(
    names: Sequence[str],
    last_success: Mapping[str, datetime | None],
    *,
    now: datetime,
    max_age: timedelta,
) -> list[str]:
    """The ``names`` whose last success is older than ``max_age`` (or who never succeeded).

    A success exactly ``max_age`` ago is still fresh; the order of ``names`` is kept.
    """
    oldest = now - max_age
    return [name for name in names if (at := last_success.get(name)) is None or at < oldest]
