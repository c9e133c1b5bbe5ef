"""The four FMCSA sources against the simulator: faults land where they should, secrets never leak.

The simulator speaks the real formats on loopback; the orchestrator runs on the
real clock here, with no retries and no latency, so nothing waits on time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine_helpers import within
from fmcsa_fleet import CARRIERS, DATAHUB_FAILS, DOTS, ENVIRON, SAFERWEB_FAILS, synced_fleet
from synchestra.core.records import RecordQuery
from synchestra.engine.orchestrator import Orchestrator
from synchestra.simulator import (
    DEFAULT_SAFERWEB_KEY,
    DEFAULT_WEBKEY,
    ApiConfig,
)


async def all_records(orc: Orchestrator, kind: str) -> list[Any]:
    rows, cursor = await orc.store.list_records(RecordQuery(kind, limit=100_000))
    assert cursor is None
    return rows


async def test_faults_land_on_their_source_and_target_and_the_rest_succeeds(
    tmp_path: Path,
) -> None:
    async with synced_fleet(tmp_path, ENVIRON) as (sim, orc, summary):
        failed = {(run.source, run.target) for run in summary.runs if run.state.value == "failed"}
        assert failed == {
            ("violations", f"dot:{DATAHUB_FAILS}"),
            ("inspections", f"dot:{SAFERWEB_FAILS}"),
        }
        assert (summary.total, summary.failed, summary.succeeded) == (CARRIERS, 2, CARRIERS - 2)
        errors = {e["target"]: e["errors"] for e in summary.errors}
        assert errors[f"dot:{DATAHUB_FAILS}"][0]["error"].startswith("HTTP 503 from datahub")
        assert errors[f"dot:{SAFERWEB_FAILS}"][0]["error"].startswith("HTTP 500 from saferweb")

        assert len(await all_records(orc, "carrier")) == CARRIERS
        assert len(await all_records(orc, "inspection")) == CARRIERS - 1
        basics = await all_records(orc, "basic")
        assert {row.target for row in basics} == {f"dot:{dot}" for dot in DOTS}
        violations = await all_records(orc, "violation")
        by_target: dict[str, int] = {}
        for row in violations:
            by_target[row.target] = by_target.get(row.target, 0) + 1
        assert f"dot:{DATAHUB_FAILS}" not in by_target
        big = max(by_target.values())
        assert big > 2_000  # the big carrier took several Socrata pages

        seen = sim.counters()
        for api in ("qcmobile", "datahub", "saferweb"):
            assert seen[api].peak_concurrency <= 2, api  # the configured cap held
            assert seen[api].too_many_requests == 0, api
            assert max(seen[api].peak_concurrency_by_target.values(), default=0) <= 1, api

        again = await within(orc.sync(["violations"]), seconds=60)
        unchanged = [
            run.result["unchanged"] for run in again.runs if run.state.value == "succeeded"
        ]
        assert sum(unchanged) == len(violations)
        assert all(
            run.result["created"] == run.result["updated"] == 0
            for run in again.runs
            if run.state.value == "succeeded"
        )


async def test_a_missing_credential_skips_only_its_sources(tmp_path: Path) -> None:
    environ = {"SAFERWEB_API_KEY": DEFAULT_SAFERWEB_KEY}  # no FMCSA_WEBKEY
    async with synced_fleet(tmp_path, environ) as (sim, _orc, summary):
        states = {(run.source, run.state.value) for run in summary.runs}
        assert ("carrier", "skipped") in states and ("csa_scores", "skipped") in states
        assert not any(s == "carrier" and st != "skipped" for s, st in states)
        skipped = next(run for run in summary.runs if run.source == "carrier")
        assert skipped.error == "not configured: FMCSA_WEBKEY is not set"
        assert sim.counters()["qcmobile"].requests == 0
        assert ("violations", "succeeded") in states and ("inspections", "succeeded") in states


@pytest.mark.parametrize("secret", [DEFAULT_WEBKEY, DEFAULT_SAFERWEB_KEY])
async def test_credentials_never_reach_logs_errors_runs_or_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with synced_fleet(tmp_path, ENVIRON) as (sim, orc, summary):
        sim.configure("qcmobile", ApiConfig(keys=("another-key",)))  # our webKey is now refused
        refused = await within(orc.sync(["carrier"]), seconds=60)
        events = [event.to_dict() for event in orc.bus.since(0)]
    assert {run.error for run in refused.runs} == {"HTTP 404 from qcmobile: Webkey not found"}
    dump = "\n".join(sqlite3.connect(tmp_path / "e2e.db").iterdump())
    assert "HTTP Request" in caplog.text  # httpx logged its requests, with the key masked
    for name, text in {
        "logs": caplog.text,
        "database": dump,
        "events": json.dumps(events, default=str),
        "summaries": json.dumps([summary.as_dict(), refused.as_dict()], default=str),
    }.items():
        assert secret not in text, name
