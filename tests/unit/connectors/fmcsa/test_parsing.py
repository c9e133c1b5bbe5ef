"""The FMCSA formats' quirks, value by value, as the real payloads write them."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synchestra.connectors.fmcsa.parsing import (
    FLAG,
    PERCENT,
    century_year,
    clean,
    clean_text,
    sms_date,
    to_flag,
    to_float,
    to_int,
    to_iso_date,
    to_percent,
    to_sms_date,
    to_timestamp,
    to_us_date,
    with_parsed,
)

TODAY = date(2026, 1, 5)


def test_zero_width_space_raw_or_as_entity_is_removed() -> None:
    assert clean_text("Controlled Substances/\u200bAlcohol") == "Controlled Substances/Alcohol"
    assert clean_text("Controlled Substances/&#8203;Alcohol") == "Controlled Substances/Alcohol"
    assert clean_text("Controlled Sub\u00adstances") == "Controlled Substances"
    assert clean({"a": ["x&#x200B;y", {"b": "\ufeffz"}], "n": 3, "none": None}) == {
        "a": ["xy", {"b": "z"}],
        "n": 3,
        "none": None,
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [("18%", 18.0), ("0%", 0.0), ("4.50%", 4.5), ("57", 57.0), ("Not Public", None), ("N/A", None)],
)
def test_percentages(text: str, value: float | None) -> None:
    assert to_percent(text) == value


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        ("Y", True),
        ("N", False),
        ("u", None),  # unknown
        ("-1", None),  # not public (2025 property carriers)
        ("Not Public", None),
        ("true", True),  # DataHub oos_indicator
        ("false", False),
        (True, True),
        (None, None),
        ("", None),
    ],
)
def test_flags(raw: object, flag: bool | None) -> None:
    assert to_flag(raw) is flag


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("1.02", 1.02),
        (".69", 0.69),
        ("0", 0.0),
        ("13,878", 13878.0),
        (10, 10.0),
        (1.15830115830115830115830115830115830116, 1.1583011583011583),
        ("NaN", None),
        ("inf", None),
        ("1e5", None),
        ("1,00", None),
        (True, None),
        ("", None),
    ],
)
def test_numbers(raw: object, number: float | None) -> None:
    assert to_float(raw) == number


def test_whole_numbers() -> None:
    assert to_int("10") == 10
    assert to_int(" 2 ") == 2
    assert to_int("1.5") is None
    assert to_int("ten") is None


@given(st.text())
def test_no_text_makes_a_parser_raise(text: str) -> None:
    for parse in (to_float, to_int, to_percent, to_flag, to_us_date, to_iso_date, to_timestamp):
        parse(text)
    to_sms_date(text, today=TODAY)


@pytest.mark.parametrize(
    ("two_digits", "today", "year"),
    [
        (25, TODAY, 2025),
        (24, TODAY, 2024),
        (27, TODAY, 2027),  # up to a year ahead
        (28, TODAY, 1928),
        (99, TODAY, 1999),
        (0, TODAY, 2000),
        (69, TODAY, 1969),
        (68, date(2068, 6, 1), 2068),
        (69, date(2068, 6, 1), 2069),  # where Python's %y pivot would say 1969
        (0, date(2099, 12, 31), 2100),
    ],
)
def test_two_digit_years_use_a_sliding_window(two_digits: int, today: date, year: int) -> None:
    assert century_year(two_digits, today) == year


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("14-MAY-25", "2025-05-14"),
        ("28-AUG-24", "2024-08-28"),
        ("30-JAN-24", "2024-01-30"),
        ("1-jan-26", "2026-01-01"),
        ("29-FEB-24", "2024-02-29"),
        ("29-FEB-25", None),
        ("14-MAI-25", None),
        ("2025-05-14", None),
        ("", None),
    ],
)
def test_sms_dates(text: str, iso: str | None) -> None:
    assert to_sms_date(text, today=TODAY) == iso


def test_other_dates_and_timestamps() -> None:
    assert to_us_date("09/12/2017") == "2017-09-12"
    assert to_us_date("13/01/2017") is None
    assert to_iso_date("2024-11-13") == "2024-11-13"
    assert to_iso_date("2024-13-01") is None
    assert to_timestamp("2017-01-27T05:00:00.000+0000") == "2017-01-27T05:00:00Z"
    assert to_timestamp("2025-09-03T13:24:24.953+0000") == "2025-09-03T13:24:24.953Z"
    assert to_timestamp("2025-09-03T13:24:24.953+0200") == "2025-09-03T11:24:24.953Z"
    assert to_timestamp("2017-01-27") is None


def test_parsed_values_sit_beside_the_raw_ones_and_absent_fields_parse_to_null() -> None:
    raw = {"insp_date": "14-MAY-25", "oos_indicator": "true", "basicsPercentile": "18%"}
    parsers = {
        "insp_date": sms_date(TODAY),
        "oos_indicator": FLAG,
        "basicsPercentile": PERCENT,
        "unsafe_insp": FLAG,
    }
    assert with_parsed(raw, parsers) == {
        **raw,
        "insp_date_iso": "2025-05-14",
        "oos_indicator_bool": True,
        "basicsPercentile_num": 18.0,
        "unsafe_insp_bool": None,
    }
