"""Schedule maths: when does a sync fire next?

Everything here is pure: the reference instant is always passed in, so the scheduler, the CLI
and the tests all agree on the answer and nothing depends on the machine's clock or local zone.
All instants going in and out are aware datetimes; results are always in UTC.

Cron field matching is delegated to ``croniter``; this module only adds what croniter does not
do the way classic cron does, namely mapping wall-clock times in a zone onto instants across
daylight-saving changes (see :func:`_wall_to_utc`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "Timing",
    "next_fire",
    "parse_cron",
    "spread_offsets",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)

# Field names and accepted values, used to say *which* field of a bad expression is wrong.
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
)

# The classic nicknames; expanded by us so that the stored expression is always five fields.
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# croniter extensions that are not deterministic functions of the expression: ``R`` picks a
# random value per croniter instance and ``H`` needs a hash id. Either would make two calls of
# next_fire disagree, so they are refused.
_NONDETERMINISTIC = re.compile(r"(?:^|,)[HR](?:$|[(/,])", re.IGNORECASE)

# Fixed start for the "can this expression ever fire?" check in CronSchedule validation.
_PROBE_START = datetime(2000, 1, 1)

# Upper bounds for the loops below. Real zones repeat or skip at most a few hours, so these
# are never reached by a valid schedule; they only turn a logic error into an exception.
_MAX_CANDIDATES = 10_000
_MAX_GAP_MINUTES = 3 * 24 * 60


@dataclass(frozen=True)
class CronSchedule:
    """A classic five-field cron expression evaluated on the wall clock of ``timezone``.

    Validated on construction, so a CronSchedule that exists can always be evaluated.
    """

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        _zone(self.timezone)
        _validate_expression(self.expression)


@dataclass(frozen=True)
class IntervalSchedule:
    """Fire every ``every``, aligned to the Unix epoch so that all processes agree on the grid."""

    every: timedelta

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError(f"interval must be positive, got {self.every}")


Schedule: TypeAlias = CronSchedule | IntervalSchedule


@dataclass(frozen=True)
class Timing:
    """A schedule plus how its runs are placed around each fire time.

    ``offset`` moves every fire later (to stagger many jobs on the same schedule away from the
    top of the hour); ``spread`` is the window over which the per-target runs of one fire are
    distributed (see :func:`spread_offsets`).
    """

    schedule: Schedule
    offset: timedelta = timedelta(0)
    spread: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.offset < timedelta(0):
            raise ValueError(f"offset must not be negative, got {self.offset}")
        if self.spread < timedelta(0):
            raise ValueError(f"spread must not be negative, got {self.spread}")


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Build a validated CronSchedule from config text.

    Whitespace is normalised and ``@daily``-style nicknames are expanded, so equal schedules
    compare equal. Raises ValueError naming what is wrong (field count, which field, or zone).
    """
    text = expression.strip()
    alias = _ALIASES.get(text.lower())
    normalised = alias if alias is not None else " ".join(text.split())
    return CronSchedule(normalised, timezone)


def next_fire(timing: Timing, after: datetime) -> datetime:
    """The first fire time of ``timing`` strictly after ``after``, as an aware UTC datetime.

    Strictly after, so feeding a result back in walks the fire times one by one. The offset is
    applied by asking the schedule about ``after - offset`` and shifting the answer back.
    """
    reference = _as_utc(after, "after")
    base = reference - timing.offset
    schedule = timing.schedule
    if isinstance(schedule, IntervalSchedule):
        fire = _next_interval(schedule, base)
    else:
        fire = _next_cron(schedule, base)
    return fire + timing.offset


def spread_offsets(spread: timedelta, count: int) -> list[timedelta]:
    """``count`` evenly spaced delays in ``[0, spread)``, the first at zero.

    Used to start the per-target runs of one fire at different moments instead of all at once,
    so they do not hit the same upstream API in a burst. Each value is ``i * spread / count``
    rounded down to a whole microsecond, so no run ever starts at or beyond ``spread``.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if spread < timedelta(0):
        raise ValueError(f"spread must not be negative, got {spread}")
    return [spread * i // count for i in range(count)]


def _as_utc(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes: guessing their zone is how schedules drift by hours."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    """Load an IANA zone, turning zoneinfo's assorted errors into one clear ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(
            f"unknown timezone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from error


def _validate_expression(expression: str) -> None:
    """Check field count and each field separately, so the error can name the culprit."""
    text = _ALIASES.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for index, (name, accepted) in enumerate(_FIELDS):
        _validate_field(expression, fields, index, name, accepted)
    try:
        croniter(text, _PROBE_START, ret_type=datetime).get_next()
    except CroniterError as error:
        raise ValueError(f"invalid cron expression {expression!r}: it never fires") from error


def _validate_field(
    expression: str, fields: list[str], index: int, name: str, accepted: str
) -> None:
    """Validate one field on its own (others set to ``*``) to report exactly which is bad."""
    field = fields[index]
    problem = f"invalid cron expression {expression!r}: bad {name} field {field!r}"
    if _NONDETERMINISTIC.search(field):
        raise ValueError(f"{problem}: random/hashed values (R, H) are not supported")
    alone = ["*"] * 5
    alone[index] = field
    try:
        croniter(" ".join(alone))
    except CroniterError as error:
        raise ValueError(f"{problem}: expected {accepted}, '*', steps, lists or ranges") from error


def _next_interval(schedule: IntervalSchedule, after: datetime) -> datetime:
    """Next point of the epoch-aligned grid strictly after ``after`` (exact integer maths)."""
    steps = (after - _EPOCH) // schedule.every + 1
    return _EPOCH + steps * schedule.every


def _next_cron(schedule: CronSchedule, after: datetime) -> datetime:
    """Next cron fire strictly after ``after``, with classic-cron DST behaviour.

    croniter walks naive wall times; each is mapped to an instant by :func:`_wall_to_utc`.
    That mapping is monotonic, so any wall time firing after ``after`` lies after the wall
    time of ``after``; candidates that still map to ``after`` or earlier (the second pass of a
    repeated hour, or the other wall times of a skipped gap) are skipped.
    """
    zone = _zone(schedule.timezone)
    text = _ALIASES.get(schedule.expression.strip().lower(), schedule.expression)
    start = after.astimezone(zone).replace(tzinfo=None)
    candidates = croniter(text, start, ret_type=datetime, day_or=True)
    for _ in range(_MAX_CANDIDATES):
        try:
            wall = candidates.get_next()
        except CroniterBadDateError as error:
            raise ValueError(f"cron expression {schedule.expression!r} never fires") from error
        fire = _wall_to_utc(wall, zone)
        if fire > after:
            return fire
    raise RuntimeError(f"no fire found for {schedule!r} after {after.isoformat()}")


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a classic cron fires for naive wall time ``wall`` in ``zone``.

    A repeated wall time (fall back) fires at its first occurrence, fold=0. A skipped wall time
    (spring forward) fires at the first instant after the gap: the first later wall minute that
    exists, which is found by stepping until the wall time survives a round trip.
    """
    for step in range(_MAX_GAP_MINUTES):
        candidate = wall + step * _MINUTE
        instant = candidate.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == candidate:
            return instant
    raise RuntimeError(f"wall time {wall.isoformat()} in {zone.key} never exists")
