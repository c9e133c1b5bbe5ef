"""``max_age``: which sources are due again for a target, the rule and the orchestrator's use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine_helpers import opened, within
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.errors import InputError, UnknownTarget
from synchestra.core.models import Target
from synchestra.engine.freshness import older_than
from synchestra.engine.orchestrator import Orchestrator

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_only_sources_older_than_max_age_or_never_synced_are_due() -> None:
    last = {"fresh": NOW - HOUR, "stale": NOW - 7 * HOUR, "never": None}
    names = ["stale", "fresh", "never", "unseen"]
    assert older_than(names, last, now=NOW, max_age=6 * HOUR) == ["stale", "never", "unseen"]


def test_a_success_exactly_max_age_ago_is_still_fresh() -> None:
    last = {"edge": NOW - 6 * HOUR, "past": NOW - 6 * HOUR - timedelta(microseconds=1)}
    assert older_than(["edge", "past"], last, now=NOW, max_age=6 * HOUR) == ["past"]


def _sources(orc: Orchestrator) -> None:
    @orc.source("profile", per_target=True)
    async def profile(ctx: SyncContext) -> None:
        return None

    @orc.source("catalog")
    async def catalog(ctx: SyncContext) -> None:
        return None


async def test_the_orchestrator_skips_fresh_sources_for_a_target(
    database_url: str, clock: FakeClock
) -> None:
    async with opened(database_url, clock, setup=_sources) as orc:
        await orc.add_targets([Target("dot:1")])
        first = await orc.request_for_target("dot:1", max_age=6 * HOUR)
        assert [(a.run.source, a.run.target) for a in first] == [("profile", "dot:1")]
        orc.start(schedule=False)
        await within(orc.wait_for([a.run.id for a in first]))
        assert await orc.request_for_target("dot:1", max_age=6 * HOUR) == []
        await clock.advance(7 * 3600)
        again = await orc.request_for_target("dot:1", ["profile"], max_age=6 * HOUR)
        assert [a.run.source for a in again] == ["profile"]


async def test_the_orchestrator_refuses_unknown_targets_and_sources_without_targets(
    database_url: str, clock: FakeClock
) -> None:
    async with opened(database_url, clock, setup=_sources) as orc:
        await orc.add_targets([Target("dot:1")])
        with pytest.raises(UnknownTarget):
            await orc.request_for_target("dot:9")
        with pytest.raises(InputError, match="has no targets"):
            await orc.request_for_target("dot:1", ["catalog"])
        assert await orc.store.list_runs() == []
