"""What the HTTP API's tests share: the token, a small catalogue of sources, markers."""

from __future__ import annotations

import pytest

from synchestra.connectors.context import SyncContext
from synchestra.engine.orchestrator import Orchestrator

TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CATALOG_SIZE = 5
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For a test whose answers are decided before any handler reads the database: on
PostgreSQL it would only add a fresh database per case (CI runs on 2 cores)."""


def setup(orc: Orchestrator) -> None:
    @orc.source("profile", per_target=True, priority=2)
    async def profile(ctx: SyncContext) -> None:
        assert ctx.target is not None
        await ctx.upsert("profile", [{"id": ctx.target.key, "name": ctx.target.name}], key="id")

    @orc.source("catalog")
    async def catalog(ctx: SyncContext) -> None:
        await ctx.upsert("item", [{"id": i} for i in range(CATALOG_SIZE)], key="id")
