"""Shared by the FMCSA connector tests: the real samples, a fake FMCSA, an open orchestrator.

The fake answers on ``http://127.0.0.1:9`` (through ``httpx.MockTransport``:
nothing listens there), routes by path, and records every request, so a test
can assert what was sent, and that nothing was.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from engine_helpers import within
from paths import FMCSA_SAMPLES
from synchestra.config import Config, parse_config
from synchestra.connectors.registry import BUILTIN_APIS
from synchestra.core.clock import FakeClock
from synchestra.core.models import Run, Target
from synchestra.core.records import RecordQuery
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.sources import spec_from_config

SAMPLES = FMCSA_SAMPLES
BASE_URL = "http://127.0.0.1:9"
WEBKEY = "WEBKEY-7f3a9c2e1d"
APP_TOKEN = "SOCRATA-TOKEN-5b8e"
SAFERWEB_KEY = "SAFERWEB-KEY-c41d"
ENVIRON = {
    "FMCSA_WEBKEY": WEBKEY,
    "SOCRATA_APP_TOKEN": APP_TOKEN,
    "SAFERWEB_API_KEY": SAFERWEB_KEY,
}
SECRETS = tuple(ENVIRON.values())
CONNECTORS = {
    "carrier": "fmcsa.carrier",
    "csa_scores": "fmcsa.csa_scores",
    "violations": "fmcsa.violations",
    "inspections": "fmcsa.inspections",
}

Route = Callable[[httpx.Request], httpx.Response]


def sample(relative: str) -> Any:
    """A real payload from the shared samples folder, decoded."""
    return json.loads((SAMPLES / relative).read_text(encoding="utf-8"))


class FakeFmcsa:
    """Answers each request by the first route whose path prefix matches; logs requests."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, Route]] = []
        self.requests: list[httpx.Request] = []

    def route(self, prefix: str, answer: Route | httpx.Response) -> None:
        handler = answer if callable(answer) else _fixed(answer)
        self.routes.insert(0, (prefix, handler))  # the latest route wins

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for prefix, handler in self.routes:
            if request.url.path.startswith(prefix):
                return handler(request)
        return httpx.Response(404, json={"error": f"no route for {request.url.path}"})

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


def _fixed(response: httpx.Response) -> Route:
    body, status, headers = response.content, response.status_code, response.headers

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return answer


def config(sources: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """The four FMCSA sources (per target, one attempt) on the fake, or these sources."""
    chosen = sources or {name: {} for name in CONNECTORS}
    return parse_config(
        {
            "apis": [
                {"name": name, "base_url": BASE_URL, "rate": "1000/s"}
                for name in ("qcmobile", "datahub", "saferweb")
            ],
            "sources": [
                {
                    "name": name,
                    "connector": CONNECTORS[name],
                    "per_target": True,
                    "retry": {"attempts": 1, "backoff": "0s"},
                    **settings,
                }
                for name, settings in chosen.items()
            ],
        },
        origin="test",
        builtin_apis=BUILTIN_APIS,
    )


@asynccontextmanager
async def opened(
    tmp_path: Path,
    fake: FakeFmcsa,
    *,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] = ENVIRON,
    targets: Sequence[str] = (),
    clock: FakeClock | None = None,
) -> AsyncIterator[Orchestrator]:
    """An open orchestrator with the FMCSA sources, talking to ``fake``, on SQLite."""
    settings = config(sources)
    orc = Orchestrator(
        settings,
        database_url=f"sqlite:///{tmp_path}/fmcsa.db",
        clock=clock or FakeClock(),
        rng=random.Random(7),
        environ=environ,
        transport=httpx.MockTransport(fake),
    )
    for source in settings.sources:
        orc.add_source(spec_from_config(source, settings.timezone))
    async with orc:
        try:
            if targets:
                await orc.add_targets([Target(key) for key in targets])
            yield orc
        finally:
            await orc.stop(grace=timedelta(0))


async def sync_one(orc: Orchestrator, source: str, target: str, mode: str = "auto") -> Run:
    """Run ``source`` for ``target`` now and return how the run ended."""
    summary = await within(orc.sync([source], targets=[target], mode=mode))
    (run,) = summary.runs
    return run


async def records(
    orc: Orchestrator, kind: str, target: str | None = None, *, include_deleted: bool = False
) -> dict[str, dict[str, Any]]:
    """The stored records of ``kind``: key -> data (every page)."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        query = RecordQuery(
            kind=kind, target=target, include_deleted=include_deleted, limit=1000, cursor=cursor
        )
        page, cursor = await orc.store.list_records(query)
        found.update({row.key: dict(row.data) for row in page})
        if cursor is None:
            return found
