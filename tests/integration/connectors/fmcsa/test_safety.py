"""Hostile target keys never reach an API; credentials never reach logs, errors, runs or events."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine_helpers import within
from fmcsa_helpers import CONNECTORS, SECRETS, WEBKEY, FakeFmcsa, opened, records, sample
from synchestra.core.models import RunState, Target
from synchestra.engine import status as views
from synchestra.interfaces.documents import (
    run_document,
    sync_status_document,
    target_status_document,
)

HOSTILE = ["1' OR '1'='1", "../", "dot:../1", "dot:123456789", "123456789", "dot:12a", "mc:1234"]


async def test_hostile_target_keys_fail_every_fmcsa_run_before_any_request(
    tmp_path: Path,
) -> None:
    fake = FakeFmcsa()
    async with opened(tmp_path, fake) as orc:
        # written to the store directly: the engine's own check would refuse most of them
        await orc.store.put_targets([Target(key) for key in HOSTILE], orc.clock.now())
        summary = await within(orc.sync(list(CONNECTORS), all_targets=True))
    assert fake.requests == []
    assert len(summary.runs) == len(HOSTILE) * len(CONNECTORS)
    for run in summary.runs:
        assert run.state is RunState.FAILED
        assert run.attempts == 1
        assert run.error == (
            f"invalid USDOT target key {run.target!r}: expected 'dot:' and 1 to 8 digits "
            "(e.g. 'dot:80321'), or the bare number"
        )


async def test_a_nine_digit_key_the_engine_accepts_is_refused_by_the_connectors(
    tmp_path: Path,
) -> None:
    fake = FakeFmcsa()
    async with opened(tmp_path, fake, targets=["dot:123456789"]) as orc:
        summary = await within(orc.sync(list(CONNECTORS), targets=["dot:123456789"]))
    assert fake.requests == []
    assert {run.error for run in summary.runs} == {
        "invalid USDOT target key 'dot:123456789': expected 'dot:' and 1 to 8 digits "
        "(e.g. 'dot:80321'), or the bare number"
    }


def with_key_in_links(payload: Any) -> Any:
    """The payload with the webKey echoed in every ``href``, as a careless server might."""
    text = json.dumps(payload)
    return json.loads(text.replace('/basics"', f'/basics?webKey={WEBKEY}"'))


async def test_credentials_appear_in_no_log_error_run_status_event_or_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeFmcsa()
    carrier = with_key_in_links(sample("qcmobile/carrier_125550_2025-09-03.json"))
    fake.route("/qc/services/carriers/125550", httpx.Response(200, json=carrier))
    basics = with_key_in_links(sample("qcmobile/basics_125550_2025-09-03.json"))
    fake.route("/qc/services/carriers/125550/basics", httpx.Response(200, json=basics))
    # QCMobile echoing the key in its message; a network error whose text holds the URL
    fake.route(
        "/qc/services/carriers/44110",
        httpx.Response(404, json={"content": f"Webkey {WEBKEY} not found"}),
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    fake.route("/qc/services/carriers/44110/basics", refuse)
    fake.route(
        "/resource/8mt8-2mdr.json",
        lambda request: httpx.Response(
            200,
            json=sample("datahub-socrata/8mt8-2mdr_violations_dot1021580_captured-2026-09-08.json")
            if request.url.params["$where"] == "dot_number='125550'"
            else [],
        ),
    )
    fake.route("/v2/usdot/snapshot/", httpx.Response(401, json={"message": "Invalid API key"}))

    async with opened(tmp_path, fake, targets=["dot:125550", "dot:44110"]) as orc:
        with orc.bus.subscribe() as events:
            summary = await within(orc.sync(list(CONNECTORS), all_targets=True))
            seen = []
            while (event := events.get_nowait()) is not None:
                seen.append(event.to_dict())
        stored_runs = await orc.store.get_runs([run.id for run in summary.runs])
        statuses = [
            target_status_document(await views.target_status(orc.store, orc.sources, key))
            for key in ("dot:125550", "dot:44110")
        ]
        overall = sync_status_document(
            await views.sync_status(
                orc.store, orc.sources, orc.clock.now(), orc.config.engine.lease
            )
        )
        stored = {kind: await records(orc, kind) for kind in ("carrier", "basic", "violation")}

    errors = {(run.source, run.target): run.error for run in summary.runs}
    assert errors[("carrier", "dot:44110")] == "HTTP 404 from qcmobile: Webkey *** not found"
    assert errors[("csa_scores", "dot:44110")] == "network error from qcmobile: ConnectError"
    assert errors[("carrier", "dot:125550")] is None
    assert len(stored["basic"]) == 5 and len(stored["carrier"]) == 1
    assert any(f"webKey={WEBKEY}" in str(r.url) for r in fake.requests)  # the key was sent
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines and all("webKey=***" in line for line in httpx_lines if "/qc/" in line)

    texts = {
        "logs": caplog.text,
        "summary": json.dumps(summary.as_dict()),
        "runs": json.dumps([run_document(run) for run in stored_runs]),
        "status": json.dumps([statuses, overall]),
        "events": json.dumps(seen, default=str),
        "records": json.dumps(stored),
    }
    assert seen and texts["logs"]
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"a credential leaked into {where}"
