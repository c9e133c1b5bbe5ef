"""One definition of a source: TOML tables and ``@orc.source`` give the same spec."""

from __future__ import annotations

from datetime import timedelta
from typing import get_type_hints

import pytest

from synchestra.config import SourceConfig, SourceSettings, parse_config
from synchestra.connectors.context import SyncContext
from synchestra.core.errors import ConfigError
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.retry import RetryPolicy
from synchestra.engine.sources import build_spec

SETTINGS = {
    "per_target": True,
    "schedule": "15 */6 * * *",
    "offset": "5m",
    "spread": "1h",
    "priority": 3,
    "group": "fmcsa",
    "timeout": "90s",
    "retry": {"attempts": 5, "backoff": "1s", "max_backoff": "1m"},
    "stale_after": "12h",
    "full_every": "2d",
    "params": {"page_size": 10},
}


async def fetch(ctx: SyncContext) -> None:
    """A source function that does nothing (its spec is what is tested)."""


def test_the_decorator_takes_every_key_a_sources_table_has() -> None:
    table_keys = set(SourceConfig.model_fields) - {"name", "connector"}
    assert set(get_type_hints(SourceSettings)) == table_keys


def test_toml_and_decorator_build_the_same_spec() -> None:
    config = parse_config(
        {"sources": [{"name": "s", "connector": f"{__name__}:fetch", **SETTINGS}]}
    )
    from_toml = build_spec(config.sources[0], fetch, config.timezone)
    orc = Orchestrator()
    orc.source("s", **SETTINGS)(fetch)  # type: ignore[arg-type]
    assert orc.sources["s"] == from_toml
    assert from_toml.full_every == timedelta(days=2)
    assert from_toml.retry == RetryPolicy(5, timedelta(seconds=1), timedelta(minutes=1))


def test_defaults_come_from_one_place() -> None:
    orc = Orchestrator()
    orc.source("plain")(fetch)
    spec = orc.sources["plain"]
    defaults = SourceConfig(name="plain", connector="x")
    assert (spec.timeout, spec.full_every, spec.priority) == (
        defaults.timeout,
        defaults.full_every,
        defaults.priority,
    )
    assert spec.retry == RetryPolicy()
    assert RetryPolicy().attempts == defaults.retry.attempts
    assert spec.timing is None


def test_the_decorator_accepts_a_retry_policy() -> None:
    orc = Orchestrator()
    orc.source("s", retry=RetryPolicy(attempts=1))(fetch)
    assert orc.sources["s"].retry.attempts == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"every": "30m", "schedule": "0 * * * *"}, "every: cannot be combined with 'schedule'"),
        ({"timeout": "soon"}, "source 's': timeout:"),
        ({"schedule": "61 * * * *"}, "invalid cron expression"),
        ({"priorty": 3}, "priorty: unknown key"),
    ],
)
def test_bad_settings_in_code_are_refused_like_bad_toml(
    settings: dict[str, object], message: str
) -> None:
    orc = Orchestrator()
    with pytest.raises(ConfigError, match=message):
        orc.source("s", **settings)(fetch)  # type: ignore[arg-type]
    assert orc.sources == {}
