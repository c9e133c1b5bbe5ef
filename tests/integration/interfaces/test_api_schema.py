"""Schema-based fuzzing of the HTTP API with Schemathesis (4.x): every operation of the
app's own ``/openapi.json`` gets generated requests (bearer token always sent), and each
response must not be a 5xx and must conform to the schema (documented status code,
content type and body).

The orchestrator is async and bound to one event loop, while Schemathesis' ASGI transport
runs every call on a fresh loop of its own. So the test is synchronous: one anyio blocking
portal owns a loop, the orchestrator is opened on it, and every generated case is sent
there through ``httpx.ASGITransport`` (no socket) and validated with
``Case.validate_response``. ``GET /api/events`` is an endless stream and is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_helpers import AUTH, TOKEN, setup
from engine_helpers import opened
from synchestra.core.clock import FakeClock
from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app

BASE_URL = "http://127.0.0.1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded and derandomized: the same examples on every run, so it never flakes in CI.
FUZZ = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # Generating bodies and paths from JSON schemas can be slow or filter a lot; that
    # is about the generator, not the API under test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _schema_app() -> FastAPI:
    """An app over a never-opened orchestrator: only its OpenAPI document is read."""
    return create_app(Orchestrator(database_url="sqlite://", environ={}), token=TOKEN)


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _schema_app()).exclude(
    method="GET", path="/api/events"
)


def _labels() -> list[str]:
    """``METHOD /path`` of every operation; one Schemathesis cannot read fails collection."""
    labels = []
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        labels.append(result.ok().label)
    return sorted(labels)


LABELS = _labels()


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as blocking_portal:
        yield blocking_portal


@pytest.fixture
def api(portal: BlockingPortal, tmp_path: Path, clock: FakeClock) -> Iterator[httpx.AsyncClient]:
    """An open orchestrator (two targets) and a client of its app, all on the portal's loop."""
    with portal.wrap_async_context_manager(
        opened(f"sqlite:///{tmp_path}/schema.db", clock, setup=setup)
    ) as orc:
        portal.call(orc.add_targets, [Target("dot:1", "Alpha"), Target("dot:2", "Beta")])
        app = create_app(orc, token=TOKEN)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=AUTH
        )
        with portal.wrap_async_context_manager(client):
            yield client


async def _send(client: httpx.AsyncClient, case: schemathesis.Case[Any]) -> httpx.Response:
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=BASE_URL, headers=AUTH)
    unsupported = set(kwargs) - {"method", "url", "headers", "params", "cookies", "json", "data"}
    assert not unsupported, f"unexpected transport arguments {unsupported}"
    content: Any = kwargs.get("data")
    return await client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs["headers"],
        params=kwargs["params"],
        cookies=kwargs["cookies"] or None,
        json=kwargs.get("json"),
        content=content,
    )


def test_labels_cover_the_api() -> None:
    assert "GET /api/events" not in LABELS
    assert {"GET /api/health", "POST /api/sync", "GET /metrics"} <= set(LABELS)


@pytest.mark.parametrize("label", LABELS)
def test_operation_conforms_to_schema(
    label: str, portal: BlockingPortal, api: httpx.AsyncClient
) -> None:
    method, path = label.split(" ", 1)
    operation = SCHEMA[path][method]

    @FUZZ
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        response = portal.call(_send, api, case)
        case.validate_response(response, checks=CHECKS, headers=AUTH)

    check()
