"""Tests for synchestra.engine.schedules.

The cron tests compare next_fire with a brute-force oracle written here from scratch: it walks
UTC minutes, looks at the local wall clock and decides on its own whether classic cron fires,
without croniter and without the module's wall-time-to-instant mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synchestra.engine.schedules import (
    CronSchedule,
    IntervalSchedule,
    Timing,
    next_fire,
    parse_cron,
    spread_offsets,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def cron(expression: str, timezone: str = "UTC", offset: timedelta = timedelta(0)) -> Timing:
    return Timing(parse_cron(expression, timezone), offset=offset)


def fires(timing: Timing, after: datetime, count: int) -> list[datetime]:
    result: list[datetime] = []
    for _ in range(count):
        after = next_fire(timing, after)
        result.append(after)
    return result


# --- the independent oracle -------------------------------------------------------------------


def _field_values(field: str, low: int, high: int) -> frozenset[int]:
    """Numbers, ``*``, ``*/n``, ``a-b``, ``a-b/n`` and comma lists; nothing fancier."""
    values: set[int] = set()
    for item in field.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            first, last = body.split("-")
            start, stop = int(first), int(last)
        else:
            start = stop = int(body)
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Matcher:
    """Classic cron matching of one wall time (day-of-month OR day-of-week if both are set)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Matcher:
        minute, hour, day, month, weekday = expression.split()
        weekdays = frozenset(value % 7 for value in _field_values(weekday, 0, 7))
        return cls(
            _field_values(minute, 0, 59),
            _field_values(hour, 0, 23),
            _field_values(day, 1, 31),
            _field_values(month, 1, 12),
            weekdays,
            not day.startswith("*"),
            not weekday.startswith("*"),
        )

    def day_matches(self, wall: datetime) -> bool:
        in_days = wall.day in self.days
        in_weekdays = (wall.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def hour_matches(self, wall: datetime) -> bool:
        return wall.month in self.months and wall.hour in self.hours and self.day_matches(wall)

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and self.hour_matches(wall)


def _local(instant: datetime, zone: ZoneInfo) -> tuple[datetime, int]:
    """Naive wall time and fold (1 = second occurrence of a repeated wall time)."""
    local = instant.astimezone(zone)
    return local.replace(tzinfo=None, fold=0), local.fold


def _oracle_minute(matcher: Matcher, instant: datetime, zone: ZoneInfo) -> bool:
    """Does classic cron fire at this UTC minute?"""
    wall, fold = _local(instant, zone)
    if fold == 0 and matcher.matches(wall):
        return True
    previous, _ = _local(instant - MINUTE, zone)
    skipped = previous + MINUTE
    while skipped < wall:  # first instant after a spring-forward gap: any skipped match fires
        if matcher.matches(skipped):
            return True
        skipped += MINUTE
    return False


def oracle(expression: str, timezone: str, start: datetime) -> Iterator[datetime]:
    """Fire instants strictly after ``start``, found by scanning UTC minutes.

    Hours in which the wall clock simply advances by an hour (no gap, no repeat, no fold
    change) are checked in one go for speed; any other hour is scanned minute by minute.
    """
    matcher = Matcher.parse(expression)
    zone = ZoneInfo(timezone)
    hour = start.replace(minute=0, second=0, microsecond=0)
    while True:
        wall, fold = _local(hour, zone)
        before, _ = _local(hour - MINUTE, zone)
        wall_end, fold_end = _local(hour + HOUR, zone)
        regular = wall - before == MINUTE and wall_end - wall == HOUR and fold == fold_end
        if regular:
            if fold == 0 and (
                matcher.hour_matches(wall) or matcher.hour_matches(wall_end - MINUTE)
            ):
                indexes = sorted((minute - wall.minute) % 60 for minute in matcher.minutes)
                for index in indexes:
                    instant = hour + index * MINUTE
                    if instant > start and matcher.matches(wall + index * MINUTE):
                        yield instant
        else:
            for index in range(60):
                instant = hour + index * MINUTE
                if instant > start and _oracle_minute(matcher, instant, zone):
                    yield instant
        hour += HOUR


def oracle_next(expression: str, timezone: str, start: datetime) -> datetime:
    return next(oracle(expression, timezone, start))


YEAR_START = utc(2026, 1, 1)
YEAR_END = utc(2027, 1, 1)


@cache
def oracle_year(expression: str, timezone: str) -> tuple[datetime, ...]:
    """All fires during 2026 (cached: several tests slice the same year)."""
    result: list[datetime] = []
    for instant in oracle(expression, timezone, YEAR_START - MINUTE):
        if instant >= YEAR_END:
            return tuple(result)
        result.append(instant)
    raise AssertionError("unreachable")


@cache
def transitions(timezone: str) -> tuple[datetime, ...]:
    """The first instants of 2026 with a new UTC offset (scanned independently of the module)."""
    zone = ZoneInfo(timezone)
    result: list[datetime] = []
    hour = YEAR_START
    while hour < YEAR_END:
        old = hour.astimezone(zone).utcoffset()
        if old != (hour + HOUR).astimezone(zone).utcoffset():
            change = hour + MINUTE
            while change.astimezone(zone).utcoffset() == old:
                change += MINUTE
            result.append(change)
        hour += HOUR
    return tuple(result)


def test_oracle_sanity() -> None:
    # The oracle itself must reproduce the documented classic-cron behaviour.
    assert oracle_next("30 2 * * *", NEW_YORK, utc(2026, 3, 8)) == utc(2026, 3, 8, 7)
    fall_back = oracle("30 1 * * *", NEW_YORK, utc(2026, 11, 1))
    assert [next(fall_back), next(fall_back)] == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert transitions(NEW_YORK) == (utc(2026, 3, 8, 7), utc(2026, 11, 1, 6))
    assert transitions("Australia/Lord_Howe") == (utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30))


# --- interval, offset, spread -----------------------------------------------------------------


def test_interval_is_aligned_to_the_epoch() -> None:
    timing = Timing(IntervalSchedule(timedelta(minutes=15)))
    assert next_fire(timing, utc(2026, 5, 1, 10, 7)) == utc(2026, 5, 1, 10, 15)
    assert next_fire(timing, utc(2026, 5, 1, 10, 15)) == utc(2026, 5, 1, 10, 30)
    assert fires(timing, utc(2026, 5, 1, 23, 40), 3) == [
        utc(2026, 5, 1, 23, 45),
        utc(2026, 5, 2, 0, 0),
        utc(2026, 5, 2, 0, 15),
    ]


def test_interval_with_offset() -> None:
    timing = Timing(IntervalSchedule(timedelta(minutes=15)), offset=timedelta(minutes=5))
    assert next_fire(timing, utc(2026, 5, 1, 10, 0)) == utc(2026, 5, 1, 10, 5)
    assert next_fire(timing, utc(2026, 5, 1, 10, 5)) == utc(2026, 5, 1, 10, 20)
    assert next_fire(timing, utc(2026, 5, 1, 10, 4, 59)) == utc(2026, 5, 1, 10, 5)


def test_interval_larger_than_a_day_and_odd_sizes() -> None:
    weekly = Timing(IntervalSchedule(timedelta(days=7)))
    # The epoch was a Thursday, so a 7-day grid fires on Thursdays at midnight UTC.
    assert next_fire(weekly, utc(2026, 5, 1)) == utc(2026, 5, 7)
    odd = Timing(IntervalSchedule(timedelta(seconds=7)))
    fired = next_fire(odd, utc(2026, 5, 1, 12, 0, 0))
    assert (fired - utc(1970, 1, 1)) % timedelta(seconds=7) == timedelta(0)


def test_cron_with_offset() -> None:
    timing = cron("0 * * * *", offset=timedelta(minutes=5))
    assert next_fire(timing, utc(2026, 5, 1, 10, 0)) == utc(2026, 5, 1, 10, 5)
    assert next_fire(timing, utc(2026, 5, 1, 10, 5)) == utc(2026, 5, 1, 11, 5)


def test_results_are_utc_and_non_utc_aware_input_is_accepted() -> None:
    berlin = datetime(2026, 5, 1, 12, 7, tzinfo=ZoneInfo("Europe/Berlin"))
    result = next_fire(Timing(IntervalSchedule(timedelta(minutes=15))), berlin)
    assert result == utc(2026, 5, 1, 10, 15)
    assert result.tzinfo is UTC


def test_spread_offsets() -> None:
    assert spread_offsets(timedelta(minutes=10), 4) == [
        timedelta(0),
        timedelta(minutes=2, seconds=30),
        timedelta(minutes=5),
        timedelta(minutes=7, seconds=30),
    ]
    assert spread_offsets(timedelta(minutes=10), 1) == [timedelta(0)]
    assert spread_offsets(timedelta(minutes=10), 0) == []
    assert spread_offsets(timedelta(0), 3) == [timedelta(0)] * 3


def test_spread_offsets_refuses_negative_input() -> None:
    with pytest.raises(ValueError, match="count"):
        spread_offsets(timedelta(minutes=1), -1)
    with pytest.raises(ValueError, match="spread"):
        spread_offsets(timedelta(minutes=-1), 2)


@given(
    spread=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    count=st.integers(min_value=1, max_value=50),
)
def test_spread_offsets_are_evenly_spaced_within_the_window(spread: timedelta, count: int) -> None:
    offsets = spread_offsets(spread, count)
    assert len(offsets) == count
    assert offsets[0] == timedelta(0)
    assert offsets == sorted(offsets)
    assert all(timedelta(0) <= value <= spread for value in offsets)
    if spread > timedelta(0):
        assert all(value < spread for value in offsets)
    assert spread_offsets(timedelta(microseconds=1), 3) == [timedelta(0)] * 3
    for index, value in enumerate(offsets):
        # i * spread / count, rounded down to whole microseconds
        assert timedelta(0) <= spread * index - value * count < timedelta(microseconds=count)


@given(
    every=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3)),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_interval_property(every: timedelta, offset: timedelta, after: datetime) -> None:
    reference = after.replace(tzinfo=UTC)
    fired = next_fire(Timing(IntervalSchedule(every), offset=offset), reference)
    assert fired.tzinfo is UTC
    assert reference < fired <= reference + every
    assert (fired - offset - utc(1970, 1, 1)) % every == timedelta(0)


# --- validation -------------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(Timing(IntervalSchedule(timedelta(minutes=1))), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        next_fire(cron("* * * * *"), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "expected 5 fields"),
        ("* * * *", "expected 5 fields.*got 4"),
        ("0 * * * * *", "expected 5 fields.*got 6"),
        ("@reboot", "expected 5 fields"),
        ("61 * * * *", "bad minute field '61'"),
        ("* 24 * * *", "bad hour field '24'"),
        ("* * 0 * *", "bad day-of-month field '0'"),
        ("* * * 13 *", "bad month field '13'"),
        ("* * * * 8", "bad day-of-week field '8'"),
        ("*/0 * * * *", "bad minute field"),
        ("x * * * *", "bad minute field 'x'"),
        ("R * * * *", "random/hashed"),
        ("H * * * *", "random/hashed"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_cron_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_cron(expression)
    assert "cron expression" in str(caught.value)


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "../etc/passwd", "/etc/passwd"])
def test_unknown_timezone(timezone: str) -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_cron("* * * * *", timezone)
    with pytest.raises(ValueError, match="unknown timezone"):
        CronSchedule("* * * * *", timezone)


def test_other_constructor_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        IntervalSchedule(timedelta(0))
    with pytest.raises(ValueError, match="offset"):
        Timing(IntervalSchedule(HOUR), offset=-MINUTE)
    with pytest.raises(ValueError, match="spread"):
        Timing(IntervalSchedule(HOUR), spread=-MINUTE)
    with pytest.raises(ValueError, match="bad hour"):
        CronSchedule("0 25 * * *")


def test_parse_cron_normalises() -> None:
    assert parse_cron("  0   *  * * *  ") == CronSchedule("0 * * * *")
    assert parse_cron("@daily", NEW_YORK) == CronSchedule("0 0 * * *", NEW_YORK)
    assert parse_cron("@Hourly") == CronSchedule("0 * * * *")
    assert parse_cron("0 9 * * MON-FRI").expression == "0 9 * * MON-FRI"


# --- cron: explicit examples ------------------------------------------------------------------


def test_cron_in_utc() -> None:
    timing = cron("*/15 * * * *")
    assert next_fire(timing, utc(2026, 5, 1, 10, 7, 30)) == utc(2026, 5, 1, 10, 15)
    assert next_fire(timing, utc(2026, 5, 1, 10, 15)) == utc(2026, 5, 1, 10, 30)
    assert next_fire(cron("0 9 * * MON-FRI"), utc(2026, 5, 1, 9)) == utc(2026, 5, 4, 9)


def test_new_york_spring_forward_skipped_time_fires_after_the_gap() -> None:
    timing = cron("30 2 * * *", NEW_YORK)
    assert fires(timing, utc(2026, 3, 7, 12), 3) == [
        utc(2026, 3, 8, 7, 0),  # 02:30 does not exist; fires at 03:00 EDT
        utc(2026, 3, 9, 6, 30),
        utc(2026, 3, 10, 6, 30),
    ]


def test_new_york_spring_forward_gap_fires_once_for_many_wall_times() -> None:
    timing = cron("*/15 2 * * *", NEW_YORK)
    assert fires(timing, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)]


def test_new_york_fall_back_repeated_time_fires_once() -> None:
    timing = cron("30 1 * * *", NEW_YORK)
    assert fires(timing, utc(2026, 10, 30, 12), 3) == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; 01:30 EST (06:30Z) does not fire again
        utc(2026, 11, 2, 6, 30),
    ]
    # Asking from inside the repeated hour still skips the second occurrence.
    assert next_fire(timing, utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6, 30)


def test_new_york_fall_back_hourly_and_offset() -> None:
    hourly = cron("0 * * * *", NEW_YORK)
    assert fires(hourly, utc(2026, 11, 1, 4, 30), 3) == [
        utc(2026, 11, 1, 5),  # 01:00 EDT
        utc(2026, 11, 1, 7),  # 02:00 EST; 01:00 EST is the repeat
        utc(2026, 11, 1, 8),
    ]
    shifted = cron("30 1 * * *", NEW_YORK, offset=timedelta(minutes=10))
    assert next_fire(shifted, utc(2026, 11, 1, 5)) == utc(2026, 11, 1, 5, 40)
    assert next_fire(shifted, utc(2026, 11, 1, 5, 40)) == utc(2026, 11, 2, 6, 40)


# --- cron: against the oracle -----------------------------------------------------------------

EXPRESSIONS = [
    "30 2 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "0 1 * * *",
    "30 1 * * *",
    "0 2 * * 0",
    "5 4 1 * *",
    "15,45 0-3 * * *",
    "0 2 8,11 3,11 *",
]
ZONES = ["UTC", NEW_YORK, "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]


def _starts(timezone: str) -> list[tuple[datetime, int]]:
    """Where to start iterating and how many fires to compare from there.

    The start of the year, then instants shortly before, at and just after each offset change
    (so inside a repeated hour, or right at the first instant after a gap).
    """
    starts = [(YEAR_START, 500 if not transitions(timezone) else 200)]
    for change in transitions(timezone):
        starts.append((change - timedelta(days=2, minutes=7), 500))
        starts += [(change + timedelta(seconds=seconds), 30) for seconds in (-1, 0, 1020, 2700)]
    return starts


@pytest.mark.parametrize("timezone", ZONES)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_cron_matches_oracle_over_long_runs(expression: str, timezone: str) -> None:
    expected_year = oracle_year(expression, timezone)
    timing = cron(expression, timezone)
    for start, count in _starts(timezone):
        expected = [fire for fire in expected_year if fire > start][:count]
        actual: list[datetime] = []
        after = start
        while len(actual) < len(expected):
            after = next_fire(timing, after)
            actual.append(after)
        assert actual == expected, (expression, timezone, start)


_NUMBER_FIELDS = {
    "minute": ["*", "*/15", "*/7", "0", "30", "59", "0,30", "10-20", "0-50/25"],
    "hour": ["*", "*/2", "0", "1", "2", "3", "1,2", "1-3", "0-23/5", "22,23"],
    "day": ["*", "1", "8", "15,25", "1-10", "*/3", "28"],
    "month": ["*", "3", "11", "3,10", "3-4", "10-11", "*/2"],
    "weekday": ["*", "0", "7", "1-5", "0,6", "3"],
}


@st.composite
def simple_expressions(draw: st.DrawFn) -> str:
    minute = draw(st.sampled_from(_NUMBER_FIELDS["minute"]))
    hour = draw(st.sampled_from(_NUMBER_FIELDS["hour"]))
    month = draw(st.sampled_from(_NUMBER_FIELDS["month"]))
    day = draw(st.sampled_from(_NUMBER_FIELDS["day"]))
    weekday = draw(st.sampled_from(_NUMBER_FIELDS["weekday"]))
    if day.startswith("*") != weekday.startswith("*") and "/" in day + weekday:
        # Whether "*/n" counts as restricted differs between cron implementations.
        day = "*"
    return f"{minute} {hour} {day} {month} {weekday}"


_TRANSITION_ZONES = [NEW_YORK, "Europe/Berlin", "Australia/Lord_Howe"]


@st.composite
def transition_week_instants(draw: st.DrawFn) -> tuple[str, datetime]:
    timezone = draw(st.sampled_from(_TRANSITION_ZONES))
    change = draw(st.sampled_from(transitions(timezone)))
    near = st.integers(min_value=-2 * 3600, max_value=4 * 3600)  # around the change itself
    seconds = draw(near | st.integers(min_value=-4 * 86400, max_value=3 * 86400))
    microseconds = draw(st.sampled_from([0, 0, 1, 999_999, 500_000]))
    return timezone, change + timedelta(seconds=seconds, microseconds=microseconds)


@settings(max_examples=150, deadline=None)
@given(expression=simple_expressions(), place=transition_week_instants())
def test_cron_matches_oracle_random(expression: str, place: tuple[str, datetime]) -> None:
    timezone, start = place
    timing = cron(expression, timezone)
    expected = oracle(expression, timezone, start)
    after = start
    for _ in range(3):
        after = next_fire(timing, after)
        assert after.tzinfo is UTC
        assert after == next(expected), (expression, timezone, start)


@settings(max_examples=60, deadline=None)
@given(
    expression=simple_expressions(),
    place=transition_week_instants(),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=3)),
)
def test_cron_offset_shifts_the_base_schedule(
    expression: str, place: tuple[str, datetime], offset: timedelta
) -> None:
    timezone, start = place
    shifted = next_fire(cron(expression, timezone, offset), start)
    assert shifted > start
    assert shifted == next_fire(cron(expression, timezone), start - offset) + offset
