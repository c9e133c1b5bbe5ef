"""The simulator without a server: data, SoQL, paging, limits, faults and the CLI."""

from __future__ import annotations

import json
import os
import random
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from synchestra.cli import main
from synchestra.core.errors import InputError
from synchestra.simulator import (
    ApiConfig,
    ErpSizes,
    ErpStore,
    FaultConfig,
    FmcsaData,
    SimulatorConfig,
    TargetFault,
    UnknownCarrier,
)
from synchestra.simulator.basics import run_date
from synchestra.simulator.command import build_config, parse_rates
from synchestra.simulator.faults import Burst, choose_fault
from synchestra.simulator.limits import SlidingWindow
from synchestra.simulator.paging import (
    PagingError,
    choose_style,
    decode_cursor,
    encode_cursor,
)
from synchestra.simulator.soql import Condition, SoqlError, parse_query
from synchestra.simulator.timefmt import qc_timestamp, socrata_date
from synchestra.simulator.violations import COLUMNS
from synchestra.simulator.wire import dumps, oracle_percent

SAMPLES = Path(os.environ.get("SYNCHESTRA_FMCSA_SAMPLES", "/work/shared/fmcsa-samples"))


def documents(data: FmcsaData) -> list[object]:
    return [
        (data.carrier(dot), data.basics(dot), data.violations(dot), data.snapshot(dot))
        for dot in data.dots
    ]


def test_same_config_same_data_and_seed_changes_it() -> None:
    config = SimulatorConfig(carriers=6, big_carriers=0)
    assert documents(FmcsaData(config)) == documents(FmcsaData(config))
    assert documents(FmcsaData(config)) != documents(FmcsaData(SimulatorConfig(carriers=6, seed=1)))
    erp = [ErpStore(0, ErpSizes(), date(2026, 9, 1)).records(c) for c in ("orders", "prices")]
    assert erp == [
        ErpStore(0, ErpSizes(), date(2026, 9, 1)).records(c) for c in ("orders", "prices")
    ]


def test_a_carrier_does_not_depend_on_the_fleet_size() -> None:
    small, large = FmcsaData(SimulatorConfig(carriers=3)), FmcsaData(SimulatorConfig(carriers=300))
    dot = small.dots[2]
    assert small.carrier(dot) == large.carrier(dot) and small.snapshot(dot) == large.snapshot(dot)
    assert large.dots[:3] == [1_000_001, 1_000_011, 1_000_021]
    assert not small.has(large.dots[5]) and not small.has(1_000_002)
    with pytest.raises(UnknownCarrier):
        small.carrier(42)
    assert small.violations(42) == []


def test_big_carriers_have_the_configured_rows_with_unique_inspections() -> None:
    data = FmcsaData(SimulatorConfig(carriers=10, big_carriers=2, big_carrier_rows=2_100))
    assert len(data.big_dots) == 2
    ids: dict[str, str] = {}
    for dot in data.dots:
        for row in data.violations(dot):
            assert ids.setdefault(row["unique_id"], row["dot_number"]) == row["dot_number"]
    assert all(len(data.violations(dot)) == 2_100 for dot in data.big_dots)


def test_oos_rates_are_spelled_like_the_real_2021_payload() -> None:
    path = SAMPLES / "qcmobile/carrier_158121_2021-02-28.json"
    if not path.exists():
        missing = f"FMCSA samples not found at {SAMPLES}"
        pytest.fail(missing) if os.environ.get("CI") == "true" else pytest.skip(missing)
    raw = path.read_text()
    carrier = json.loads(raw)["content"]["carrier"]
    for kind in ("driver", "vehicle", "hazmat"):
        ours = oracle_percent(carrier[f"{kind}OosInsp"], carrier[f"{kind}Insp"])
        assert f'"{kind}OosRate":{dumps(ours)}' in raw
    assert oracle_percent(0, 0) == 0 and dumps(oracle_percent(1, 8)) == "12.5"


def test_sms_run_is_frozen_in_2017_until_advanced() -> None:
    data = FmcsaData(SimulatorConfig(carriers=2))
    dot = data.dots[0]
    first = data.basics(dot)
    assert {e["basic"]["basicsRunDate"] for e in first} == {"2017-01-27T05:00:00.000+0000"}
    assert data.advance_sms_run() == 1
    assert data.basics(dot) != first and run_date(1).startswith("2017-02-26")


def test_date_spellings() -> None:
    assert socrata_date(date(2025, 5, 14)) == "14-MAY-25"
    moment = datetime(2021, 2, 28, 6, 33, 31, 490_123, tzinfo=UTC)
    assert qc_timestamp(moment) == "2021-02-28T06:33:31.490+0000"


def test_erp_stamps_always_advance_even_with_a_clock_behind_the_data() -> None:
    store = ErpStore(
        3, ErpSizes(orders=5), date(2026, 9, 1), now=lambda: datetime(2000, 1, 1, tzinfo=UTC)
    )
    newest = max(r["updated_at"] for r in store.records("orders"))
    first = store.create("orders", {"id": 99, "status": "new"})
    second = store.update("orders", 1, {"status": "paid", "id": 7})
    assert newest < first["updated_at"] < second["updated_at"]
    assert (first["id"], second["id"]) == (6, 1)
    store.delete("orders", 1)
    with pytest.raises(KeyError):
        store.get("orders", 1)
    with pytest.raises(KeyError):
        store.update("orders", 1, {})


def test_soql_parses_the_supported_subset() -> None:
    query = parse_query(
        [
            ("$where", "dot_number IN ('1','2') AND group_desc != 'O''Brien' AND viol_unit='D'"),
            ("$order", "insp_date DESC, :id"),
            ("$limit", "20"),
            ("$offset", "40"),
            ("$$app_token", "x"),
        ],
        COLUMNS,
    )
    assert query.where == (
        Condition("dot_number", "in", ("1", "2")),
        Condition("group_desc", "!=", ("O'Brien",)),
        Condition("viol_unit", "=", ("D",)),
    )
    assert [(k.column, k.descending) for k in query.order] == [("insp_date", True), (":id", False)]
    assert (query.limit, query.offset, query.values_of("dot_number")) == (20, 40, {"1", "2"})


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("dot_number = '1' OR dot_number = '2'", "query.compiler.malformed"),
        ("dot_number > '1'", "query.compiler.malformed"),
        ("dot_number in ('1' '2')", "query.compiler.malformed"),
        ("dot_number = 'unterminated", "query.compiler.malformed"),
        ("dot_number in (1)", "query.soql.type-mismatch"),
    ],
)
def test_soql_refuses_what_it_does_not_support(where: str, code: str) -> None:
    with pytest.raises(SoqlError) as refused:
        parse_query([("$where", where)], COLUMNS)
    assert refused.value.body["code"] == code


def test_paging_style_rules_and_cursors() -> None:
    assert choose_style({}) == "cursor" and choose_style({"limit": "5"}) == "cursor"
    assert choose_style({"per_page": "5"}) == "page" and choose_style({"offset": "0"}) == "offset"
    assert choose_style({"style": "link"}) == "link" and choose_style({}, forced="link") == "link"
    with pytest.raises(PagingError):
        choose_style({"cursor": "x", "page": "1"})
    with pytest.raises(PagingError):
        choose_style({"style": "pages"})
    assert decode_cursor(encode_cursor(1234)) == 1234 and decode_cursor("") == 0
    with pytest.raises(PagingError):
        decode_cursor("bm9wZQ")


def test_sliding_window_admits_n_per_window() -> None:
    now = [100.0]
    window = SlidingWindow(2, 1.0, clock=lambda: now[0])
    assert [window.admit(), window.admit(), window.admit()] == [None, None, 1]
    now[0] += 0.5
    assert window.admit() == 1
    now[0] += 0.6
    assert window.admit() is None


def test_fault_precedence() -> None:
    rng = random.Random(1)
    aimed = FaultConfig(targets=(TargetFault("7", 502),), burst=1, error_rate=1.0)
    burst = Burst(1, 503)
    first = choose_fault(aimed, "7", burst, rng)
    assert first is not None and (first.status, first.reason) == (502, "target")
    second = choose_fault(aimed, "8", burst, rng)
    assert second is not None and (second.status, second.reason) == (503, "burst")
    third = choose_fault(aimed, "8", burst, rng)
    assert third is not None and third.reason == "error" and third.status in (500, 502, 503)
    assert choose_fault(FaultConfig(), "8", Burst(), rng) is None
    maintenance = choose_fault(FaultConfig(maintenance=True), "7", Burst(), rng)
    assert maintenance is not None and maintenance.kind == "maintenance"


@pytest.mark.parametrize(
    "make",
    [
        lambda: FaultConfig(error_rate=0.7, malformed_rate=0.7),
        lambda: FaultConfig(timeout_seconds=10_000),
        lambda: ApiConfig(rate=0),
        lambda: ApiConfig(concurrency=0),
        lambda: SimulatorConfig(carriers=2, big_carriers=3),
        lambda: SimulatorConfig(first_dot=99_999_990, carriers=5),
    ],
)
def test_bad_configs_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_simulate_options_become_a_config() -> None:
    config = build_config(port=0, carriers=4, seed=3, latency=0.25, rates=["datahub=10", "erp=2"])
    assert (config.datahub.rate, config.erp.rate, config.qcmobile.rate) == (10, 2, None)
    assert config.saferweb.latency == 0.25 and config.qcmobile.keys == ("sim-webkey",)
    for bad in (["datahub"], ["nope=1"], ["erp=0"], ["erp=x"]):
        with pytest.raises(InputError):
            parse_rates(bad)
    with pytest.raises(InputError):
        build_config(port=0, carriers=1, seed=0, latency=1_000, rates=[])


def test_simulate_command_prints_urls_and_stops_after_duration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["synchestra", "simulate", "--duration", "0", "--carriers", "2"]
    )
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr().out
    assert done.value.code in (0, None)
    for prefix in ("/qcmobile", "/datahub", "/saferweb", "/erp", "/_counters"):
        assert re.search(rf"http://127\.0\.0\.1:\d+{prefix}\b", out), prefix
    monkeypatch.setattr(
        sys, "argv", ["synchestra", "simulate", "--rate", "bogus", "--duration", "0"]
    )
    with pytest.raises(SystemExit) as refused:
        main()
    assert refused.value.code == 2 and "invalid --rate" in capsys.readouterr().err
