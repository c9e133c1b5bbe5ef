"""The TOML configuration, validated once at the edge.

Every setting is checked here, before anything starts, so that a misspelt key,
a bad cron expression or a dangling reference is refused with one line per
problem naming the file and the key path (``synchestra.toml: sources[1].priority:
...``) instead of failing later inside a scheduler loop. The models are frozen:
the rest of the code can share one :class:`Config` without defensive copies.

Durations are written ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` (or a number of
seconds) and become :class:`~datetime.timedelta`; rates are ``"10/s"`` or
``"600/min"`` (or a number of requests per second) and become
:class:`~synchestra.core.durations.Rate`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from synchestra.core.durations import Rate, format_duration, parse_duration, parse_rate
from synchestra.core.errors import ConfigError, UnknownSource

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


# --- value types -------------------------------------------------------------


def _to_duration(value: object) -> timedelta:
    """Accept ``"15m"``-style strings and plain seconds, as configs are written by hand."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, str):
        result = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise ValueError(
            f"invalid duration {value!r}: expected a string such as '90s', '15m', '6h' "
            "or '1d', or a number of seconds"
        )
    if result < timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    return result


def _positive(value: timedelta) -> timedelta:
    """Reject zero where it would mean "never wait" or a busy loop."""
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _to_rate(value: object) -> Rate:
    """Accept ``"10/s"``-style strings; a bare number is requests per second."""
    if isinstance(value, Rate):
        return value
    if isinstance(value, str):
        return parse_rate(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return Rate(value, timedelta(seconds=1))
    raise ValueError(f"invalid rate {value!r}: expected requests per period, e.g. '10/s'")


_PERIOD_NAMES = {1: "s", 60: "min", 3600: "h", 86400: "day"}


def _format_rate(rate: Rate) -> str:
    """The config syntax of ``rate`` (``"10/s"``), so a dumped config parses again."""
    seconds = rate.period.total_seconds()
    unit = _PERIOD_NAMES.get(int(seconds)) if seconds.is_integer() else None
    if unit is not None:
        return f"{rate.requests}/{unit}"
    return f"{rate.per_second:g}/s"


def _check_name(value: str) -> str:
    """Names appear in URLs, metrics labels and CLI arguments, so keep them plain."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid name {value!r}: use only letters, digits, '_', '.' and '-'")
    return value


def _check_non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Duration = Annotated[
    timedelta,
    PlainValidator(_to_duration, json_schema_input_type=str | float),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
RateValue = Annotated[
    Rate,
    PlainValidator(_to_rate, json_schema_input_type=str | int),
    PlainSerializer(_format_rate, return_type=str, when_used="json"),
]
Name = Annotated[str, AfterValidator(_check_name)]
NonEmpty = Annotated[str, AfterValidator(_check_non_empty)]


class _Model(BaseModel):
    """Frozen, and strict about unknown keys so that a typo is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- sections ----------------------------------------------------------------


class DatabaseConfig(_Model):
    url: NonEmpty = "sqlite:///synchestra.db"

    @field_validator("url")
    @classmethod
    def _anchor_sqlite_path(cls, value: str, info: ValidationInfo) -> str:
        """A relative SQLite file lives beside the config, whatever the cwd."""
        return _resolve_sqlite_url(value, _base_dir(info))


class ApiServerConfig(_Model):
    host: NonEmpty = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    token_env: NonEmpty = "SYNCHESTRA_API_TOKEN"


class AuthConfig(_Model):
    """Where the credential comes from (``env``) and how it is sent (header or query)."""

    env: NonEmpty
    header: NonEmpty | None = None
    query: NonEmpty | None = None
    required: bool = False

    @model_validator(mode="after")
    def _one_placement(self) -> AuthConfig:
        if (self.header is None) == (self.query is None):
            raise ValueError("set exactly one of 'header' or 'query'")
        return self


class ApiConfig(_Model):
    """An endpoint family whose rate limit and concurrency cap all its sources share."""

    name: Name
    base_url: str
    rate: RateValue | None = None
    concurrency: int | None = Field(default=None, ge=1)
    auth: AuthConfig | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"invalid URL {value!r}: expected http:// or https:// and a host")
        return value


class GroupConfig(_Model):
    """A mutual-exclusion group: at most ``max_running`` of its runs execute at once."""

    name: Name
    max_running: int = Field(default=1, ge=1)


class RetryConfig(_Model):
    attempts: int = Field(default=3, ge=1)
    backoff: Duration = timedelta(seconds=2)
    max_backoff: Duration = timedelta(minutes=5)

    @field_validator("max_backoff")
    @classmethod
    def _not_below_backoff(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        backoff = info.data.get("backoff")
        if backoff is not None and value < backoff:
            raise ValueError(f"must not be shorter than backoff ({format_duration(backoff)})")
        return value


class SourceConfig(_Model):
    """A source's settings: the one definition, for ``[[sources]]`` and ``Orchestrator.source``.

    Every default lives here; the engine's
    :class:`~synchestra.engine.sources.SourceSpec` is built from this alone.
    """

    name: Name
    connector: NonEmpty
    api: Name | None = None
    per_target: bool = False
    schedule: str | None = None
    every: PositiveDuration | None = None
    offset: Duration = timedelta(0)
    spread: Duration = timedelta(0)
    priority: int = 0
    group: Name | None = None
    timeout: PositiveDuration = timedelta(minutes=10)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    stale_after: PositiveDuration | None = None
    full_every: PositiveDuration = timedelta(hours=24)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        """croniter also takes 6- and 7-field forms; the contract promises classic 5 fields."""
        if value is None:
            return None
        fields = value.split()
        if len(fields) != 5:
            problem = f"expected 5 fields, got {len(fields)}"
        elif not croniter.is_valid(value):
            problem = "a field is out of range or malformed"
        else:
            return " ".join(fields)
        raise ValueError(
            f"invalid cron expression {value!r}: {problem} "
            "(minute hour day-of-month month day-of-week, e.g. '0 */6 * * *')"
        )

    @field_validator("every")
    @classmethod
    def _not_with_schedule(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        """Two schedules for one source would double its runs; make the user choose."""
        if value is not None and info.data.get("schedule") is not None:
            raise ValueError("cannot be combined with 'schedule': set one of them")
        return value


class SourceSettings(TypedDict, total=False):
    """The keyword arguments ``Orchestrator.source`` takes: every key of a ``[[sources]]``
    table but ``name`` and ``connector`` (the decorated function is the connector).

    Values are as in TOML (``"10m"``) or already typed (``timedelta``); ``retry``
    may also be a :class:`~synchestra.engine.retry.RetryPolicy`. A test keeps
    these keys equal to :class:`SourceConfig`'s fields.
    """

    api: str | None
    per_target: bool
    schedule: str | None
    every: str | float | timedelta | None
    offset: str | float | timedelta
    spread: str | float | timedelta
    priority: int
    group: str | None
    timeout: str | float | timedelta
    retry: Any
    stale_after: str | float | timedelta | None
    full_every: str | float | timedelta
    params: Mapping[str, Any]


class EngineConfig(_Model):
    """Engine tuning (not in the contract)."""

    workers: int = Field(default=16, ge=1)
    # A queued run gains one priority level per ``aging`` waited, so low
    # priorities cannot starve.
    aging: PositiveDuration = timedelta(minutes=10)
    # How long shutdown waits for running syncs before cancelling them.
    grace: Duration = timedelta(seconds=30)
    # A process silent for ``lease`` is dead: its runs are interrupted and queued again.
    lease: PositiveDuration = timedelta(seconds=60)
    # How often a process renews its liveness (at most lease / 3).
    heartbeat: PositiveDuration = timedelta(seconds=10)
    # PostgreSQL: wake the other processes with LISTEN/NOTIFY (false behind a
    # transaction pooler such as pgbouncer: polling only).
    notify: bool = True

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> EngineConfig:
        """Three renewals per lease, so one slow renewal does not cost a process its runs."""
        if self.heartbeat * 3 > self.lease:
            raise ValueError(
                f"heartbeat ({format_duration(self.heartbeat)}) must be at most lease / 3 "
                f"(lease {format_duration(self.lease)})"
            )
        return self


class TargetsConfig(_Model):
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    import_: Path | None = Field(default=None, alias="import")

    @field_validator("import_")
    @classmethod
    def _anchor(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """A relative CSV lives beside the config, whatever the cwd."""
        if value is None:
            return None
        value = value.expanduser()
        base = _base_dir(info)
        return value if value.is_absolute() or base is None else base / value


class Config(_Model):
    timezone: NonEmpty = "UTC"
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    api_server: ApiServerConfig = Field(default_factory=ApiServerConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    apis: list[ApiConfig] = Field(default_factory=list)
    groups: list[GroupConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    _builtin_apis: dict[str, ApiConfig] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'America/Chicago'"
            ) from None
        return value

    @field_validator("apis", mode="before")
    @classmethod
    def _inherit_defaults(cls, value: object, info: ValidationInfo) -> object:
        """Overriding a built-in API (e.g. only its base URL) keeps its other settings."""
        if not isinstance(value, list):
            return value
        builtin = _builtin_apis(info)
        return [_with_builtin_api(item, builtin) for item in value]

    @model_validator(mode="after")
    def _cross_check(self, info: ValidationInfo) -> Config:
        """References between tables; each problem on its own line, naming its key."""
        self._builtin_apis = dict(_builtin_apis(info))
        problems = [
            *_duplicates("apis", [api.name for api in self.apis]),
            *_duplicates("groups", [group.name for group in self.groups]),
            *_duplicates("sources", [source.name for source in self.sources]),
            *self._unknown_apis(),
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _unknown_apis(self) -> Iterable[str]:
        known = {api.name for api in self.apis} | self._builtin_apis.keys()
        for index, source in enumerate(self.sources):
            if source.api is not None and source.api not in known:
                yield (
                    f"sources[{index}].api: unknown api {source.api!r}; "
                    f"known: {', '.join(sorted(known))}"
                )

    @property
    def tz(self) -> ZoneInfo:
        """The zone cron schedules are read in."""
        return ZoneInfo(self.timezone)

    @property
    def implicit_groups(self) -> list[str]:
        """Groups sources name but no ``[[groups]]`` table configures (max_running 1).

        Worth a warning from ``synchestra check``: it may be a typo.
        """
        configured = {group.name for group in self.groups}
        named = (source.group for source in self.sources if source.group is not None)
        return sorted({name for name in named if name not in configured})

    def knows_api(self, name: str) -> bool:
        return name in self._builtin_apis or any(api.name == name for api in self.apis)

    def with_builtin_apis(self, builtin: Mapping[str, ApiConfig]) -> Config:
        """This config, also knowing these built-in APIs (its own come first).

        For a config built in code; a config read from TOML gets them when it is
        parsed, so that its ``[[apis]]`` tables can inherit from them.
        """
        copy = self.model_copy()
        copy._builtin_apis = {**builtin, **self._builtin_apis}
        return copy

    def api(self, name: str) -> ApiConfig:
        """The configured API of that name, else the built-in one."""
        for api in self.apis:
            if api.name == name:
                return api
        if name in self._builtin_apis:
            return self._builtin_apis[name]
        raise ConfigError(f"unknown api {name!r}")

    def group(self, name: str) -> GroupConfig | None:
        """The configured group, the implicit one a source names, or None."""
        for group in self.groups:
            if group.name == name:
                return group
        if any(source.group == name for source in self.sources):
            return GroupConfig(name=name)
        return None

    def source(self, name: str) -> SourceConfig:
        """The source of that name; unknown names are the user's error."""
        for source in self.sources:
            if source.name == name:
                return source
        raise UnknownSource(name)


# --- helpers used by the models ----------------------------------------------


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context
    if isinstance(context, Mapping):
        base = context.get("base_dir")
        if isinstance(base, Path):
            return base
    return None


def _resolve_sqlite_url(url: str, base: Path | None) -> str:
    """Make ``sqlite:///relative.db`` absolute against ``base``; leave the rest alone."""
    scheme, sep, rest = url.partition(":///")
    if base is None or not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith(("/", "file:")):
        return url
    resolved = (base / Path(path).expanduser()).as_posix()
    return f"{scheme}:///{resolved}{query_sep}{query}"


def _builtin_apis(info: ValidationInfo) -> Mapping[str, ApiConfig]:
    """The built-in APIs the loader was given (connectors bring them)."""
    context = info.context
    builtin = context.get("builtin_apis") if isinstance(context, Mapping) else None
    return builtin if isinstance(builtin, Mapping) else {}


def _with_builtin_api(item: object, builtin: Mapping[str, ApiConfig]) -> object:
    if not isinstance(item, Mapping):
        return item
    default = builtin.get(str(item.get("name")))
    if default is None:
        return item
    inherited = {
        field: getattr(default, field)
        for field in ("base_url", "rate", "concurrency", "auth")
        if field not in item
    }
    return {**inherited, **item}


def _duplicates(table: str, names: list[str]) -> Iterable[str]:
    counts = Counter(names)
    seen: set[str] = set()
    for index, name in enumerate(names):
        if counts[name] > 1 and name in seen:
            first = names.index(name)
            yield f"{table}[{index}].name: duplicate name {name!r} (also {table}[{first}])"
        seen.add(name)
