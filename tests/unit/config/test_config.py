"""The TOML configuration: the contract's example, defaults, and errors that name file and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from synchestra.config import (
    Config,
    GroupConfig,
    SourceConfig,
    load_config,
    parse_config,
    resolve_config_path,
)
from synchestra.connectors.context import SyncContext
from synchestra.connectors.registry import BUILTIN_APIS
from synchestra.core.durations import Rate
from synchestra.core.errors import ConfigError, UnknownSource
from synchestra.engine.orchestrator import Orchestrator

# Verbatim from CONTRACT.md, "Configuration (TOML)".
CONTRACT_EXAMPLE = """\
[database]
url = "sqlite:///synchestra.db"          # or postgresql://user@host/db

[api_server]
host = "127.0.0.1"
port = 8000
token_env = "SYNCHESTRA_API_TOKEN"       # bearer token for /api (health excepted)

[[apis]]
name = "datahub"
base_url = "https://datahub.transportation.gov"
rate = "10/s"                            # requests per second (also "600/min")
concurrency = 4
auth = { header = "X-App-Token", env = "SOCRATA_APP_TOKEN", required = false }
# or, for a key sent as a query parameter:
# auth = { query = "webKey", env = "FMCSA_WEBKEY", required = true }

[[groups]]
name = "erp"
max_running = 1

[[sources]]
name = "violations"
connector = "fmcsa.violations"           # built-in, or "package.module:function"
api = "datahub"
per_target = true
schedule = "0 */6 * * *"                 # cron (5 fields), or: every = "30m"
offset = "15m"                           # shift every fire time (staggering)
spread = "1h"                            # spread per-target runs over this window
priority = 3
group = "fmcsa"                          # optional
timeout = "10m"
retry = { attempts = 3, backoff = "2s", max_backoff = "5m" }
stale_after = "12h"                      # health: stale when no success for this long
full_every = "24h"                       # mode auto: full when the last full run is older
params = { }                             # passed to the connector

[targets]
import = "carriers.csv"                  # optional: loaded at start (same CSV as `targets import`)
"""

# A minimal valid source, to which each error case adds or changes one thing.
SOURCE = '[[sources]]\nname = "orders"\nconnector = "http.collection"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "synchestra.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    for line in message.splitlines():
        assert line.startswith(f"{path}: "), line
    assert "pydantic" not in message
    assert "Traceback" not in message
    return message


# --- the contract's example ----------------------------------------------------


def test_contract_example_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE))

    assert config.database.url == f"sqlite:///{tmp_path.resolve().as_posix()}/synchestra.db"
    assert (config.api_server.host, config.api_server.port) == ("127.0.0.1", 8000)
    assert config.api_server.token_env == "SYNCHESTRA_API_TOKEN"

    datahub = config.api("datahub")
    assert datahub.base_url == "https://datahub.transportation.gov"
    assert datahub.rate == Rate(10, timedelta(seconds=1))
    assert datahub.concurrency == 4
    assert datahub.auth is not None
    assert (datahub.auth.header, datahub.auth.query) == ("X-App-Token", None)
    assert (datahub.auth.env, datahub.auth.required) == ("SOCRATA_APP_TOKEN", False)

    assert config.group("erp") == GroupConfig(name="erp", max_running=1)

    source = config.source("violations")
    assert source.connector == "fmcsa.violations"
    assert source.api == "datahub"
    assert source.per_target is True
    assert source.schedule == "0 */6 * * *"
    assert source.every is None
    assert source.offset == timedelta(minutes=15)
    assert source.spread == timedelta(hours=1)
    assert source.priority == 3
    assert source.group == "fmcsa"
    assert source.timeout == timedelta(minutes=10)
    assert source.retry.attempts == 3
    assert source.retry.backoff == timedelta(seconds=2)
    assert source.retry.max_backoff == timedelta(minutes=5)
    assert source.stale_after == timedelta(hours=12)
    assert source.full_every == timedelta(hours=24)
    assert source.params == {}

    assert config.targets.import_ == tmp_path.resolve() / "carriers.csv"


def test_a_group_named_but_not_configured_is_implicit_with_one_slot(tmp_path: Path) -> None:
    # The contract's example names group "fmcsa" without a [[groups]] table.
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    assert config.group("fmcsa") == GroupConfig(name="fmcsa", max_running=1)
    assert config.implicit_groups == ["fmcsa"]
    assert config.group("nobody-uses-this") is None


def test_erp_source_with_collection_params(tmp_path: Path) -> None:
    # The contract's ERP example, with its inline table on one line (TOML 1.0,
    # which tomllib reads, allows no newline inside an inline table).
    text = """\
[[apis]]
name = "erp"
base_url = "http://127.0.0.1:8081"

[[sources]]
name = "orders"
connector = "http.collection"
api = "erp"
per_target = false
every = "15m"
params = { path = "/api/orders", kind = "order", key = "id", records = "data", \
paging = { style = "cursor", param = "cursor", next = "meta.next_cursor" }, \
watermark = { field = "updated_at", param = "updated_since", lag = "5m" } }
"""
    source = load_config(write(tmp_path, text)).source("orders")
    assert source.every == timedelta(minutes=15)
    assert source.params["paging"]["style"] == "cursor"
    assert source.params["watermark"]["lag"] == "5m"


# --- defaults -------------------------------------------------------------------


def test_empty_config_has_defaults() -> None:
    config = parse_config({})
    assert config.timezone == "UTC"
    assert config.tz.key == "UTC"
    assert config.database.url == "sqlite:///synchestra.db"
    assert config.api_server.port == 8000
    assert config.engine.workers == 16
    assert config.engine.aging == timedelta(minutes=10)
    assert config.engine.grace == timedelta(seconds=30)
    assert (config.apis, config.groups, config.sources) == ([], [], [])
    assert config.targets.import_ is None


def test_source_defaults() -> None:
    source = SourceConfig(name="s", connector="fmcsa.carrier")
    assert source.api is None
    assert source.per_target is False
    assert (source.schedule, source.every) == (None, None)
    assert source.offset == source.spread == timedelta(0)
    assert source.priority == 0
    assert source.group is None
    assert source.timeout == timedelta(minutes=10)
    assert source.retry.attempts == 3
    assert source.retry.backoff == timedelta(seconds=2)
    assert source.retry.max_backoff == timedelta(minutes=5)
    assert source.stale_after is None
    assert source.full_every == timedelta(days=1)
    assert source.params == {}


def test_default_apis_match_the_contract() -> None:
    expected = {
        "qcmobile": ("https://mobile.fmcsa.dot.gov", "FMCSA_WEBKEY", None, "webKey", True),
        "datahub": (
            "https://datahub.transportation.gov",
            "SOCRATA_APP_TOKEN",
            "X-App-Token",
            None,
            False,
        ),
        "saferweb": ("https://saferwebapi.com", "SAFERWEB_API_KEY", "x-api-key", None, True),
    }
    assert set(BUILTIN_APIS) == set(expected)
    for name, (url, env, header, query, required) in expected.items():
        api = BUILTIN_APIS[name]
        assert api.name == name
        assert api.base_url == url
        assert api.auth is not None
        assert (api.auth.env, api.auth.header, api.auth.query) == (env, header, query)
        assert api.auth.required is required
        assert api.rate is not None and api.concurrency is not None


def test_a_source_may_name_a_default_api_without_configuring_it() -> None:
    config = parse_config(
        {"sources": [{"name": "carrier", "connector": "fmcsa.carrier", "api": "qcmobile"}]},
        builtin_apis=BUILTIN_APIS,
    )
    assert config.api("qcmobile") is BUILTIN_APIS["qcmobile"]
    with pytest.raises(ConfigError, match="unknown api 'nope'"):
        config.api("nope")


def test_the_config_itself_knows_no_provider() -> None:
    """Built-in APIs come from the connectors: without them, qcmobile is just unknown."""
    source = {"name": "carrier", "connector": "fmcsa.carrier", "api": "qcmobile"}
    with pytest.raises(ConfigError, match=r"sources\[0\]\.api: unknown api 'qcmobile'"):
        parse_config({"sources": [source]})
    assert Config().with_builtin_apis(BUILTIN_APIS).knows_api("qcmobile")


def test_overriding_a_default_api_keeps_what_is_not_overridden() -> None:
    config = parse_config(
        {"apis": [{"name": "qcmobile", "base_url": "http://127.0.0.1:9000"}]},
        builtin_apis=BUILTIN_APIS,
    )
    api = config.api("qcmobile")
    assert api.base_url == "http://127.0.0.1:9000"
    assert api.auth == BUILTIN_APIS["qcmobile"].auth
    assert api.rate == BUILTIN_APIS["qcmobile"].rate


def test_durations_and_rates_accept_numbers() -> None:
    config = parse_config(
        {
            "apis": [{"name": "erp", "base_url": "http://erp", "rate": 5}],
            "sources": [{"name": "s", "connector": "c", "every": 90, "timeout": 1.5}],
        }
    )
    assert config.api("erp").rate == Rate(5, timedelta(seconds=1))
    assert config.source("s").every == timedelta(seconds=90)
    assert config.source("s").timeout == timedelta(seconds=1.5)
    per_minute = parse_config(
        {"apis": [{"name": "erp", "base_url": "http://erp", "rate": "600/min"}]}
    )
    assert per_minute.api("erp").rate == Rate(600, timedelta(minutes=1))


def test_json_dump_parses_back_to_the_same_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    dumped = config.model_dump(mode="json")
    assert dumped["apis"][0]["rate"] == "10/s"
    assert dumped["sources"][0]["offset"] == "15m"
    assert parse_config(dumped) == config


def test_unknown_source_is_an_input_error() -> None:
    with pytest.raises(UnknownSource):
        parse_config({}).source("nope")


def test_models_are_frozen() -> None:
    config = parse_config({})
    with pytest.raises(ValueError, match="frozen"):
        config.timezone = "Europe/Berlin"  # type: ignore[misc]


# --- errors name the file and the key -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            SOURCE + SOURCE.replace('"orders"', '"prices"') + 'priority = "high"\n',
            "sources[1].priority: Input should be a valid integer, "
            "unable to parse string as an integer",
            id="bad-priority-type",
        ),
        pytest.param(
            SOURCE + 'schedule = "61 * * * *"\n',
            "sources[0].schedule: invalid cron expression '61 * * * *'",
            id="bad-cron",
        ),
        pytest.param(
            SOURCE + 'schedule = "0 0 * * * *"\n',
            "sources[0].schedule: invalid cron expression '0 0 * * * *': expected 5 fields",
            id="cron-six-fields",
        ),
        pytest.param(
            SOURCE + 'every = "15 minutes"\n',
            "sources[0].every: invalid duration '15 minutes'",
            id="bad-duration",
        ),
        pytest.param(
            SOURCE + 'retry = { backoff = "soon" }\n',
            "sources[0].retry.backoff: invalid duration 'soon'",
            id="bad-nested-duration",
        ),
        pytest.param(
            SOURCE + 'every = "0s"\n',
            "sources[0].every: must be longer than zero",
            id="zero-every",
        ),
        pytest.param(
            '[[apis]]\nname = "erp"\nbase_url = "http://erp"\nrate = "10/fortnight"\n',
            "apis[0].rate: invalid rate '10/fortnight'",
            id="bad-rate",
        ),
        pytest.param(
            SOURCE + "prority = 3\n",
            "sources[0].prority: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            '[databse]\nurl = "sqlite:///x.db"\n',
            "databse: unknown key",
            id="unknown-table",
        ),
        pytest.param(
            SOURCE + 'schedule = "0 * * * *"\nevery = "1h"\n',
            "sources[0].every: cannot be combined with 'schedule'",
            id="schedule-and-every",
        ),
        pytest.param(
            SOURCE + SOURCE,
            "sources[1].name: duplicate name 'orders' (also sources[0])",
            id="duplicate-source",
        ),
        pytest.param(
            '[[groups]]\nname = "erp"\n[[groups]]\nname = "erp"\n',
            "groups[1].name: duplicate name 'erp'",
            id="duplicate-group",
        ),
        pytest.param(
            SOURCE + 'api = "erp"\n',
            "sources[0].api: unknown api 'erp'",
            id="unknown-api",
        ),
        pytest.param(
            '[[apis]]\nname = "erp"\nbase_url = "erp.example.com"\n',
            "apis[0].base_url: invalid URL 'erp.example.com'",
            id="bad-url",
        ),
        pytest.param(
            '[[apis]]\nname = "erp"\nbase_url = "http://erp"\nauth = { env = "K" }\n',
            "apis[0].auth: set exactly one of 'header' or 'query'",
            id="auth-without-placement",
        ),
        pytest.param(
            '[[groups]]\nname = "erp"\nmax_running = 0\n',
            "groups[0].max_running: Input should be greater than or equal to 1",
            id="group-without-slots",
        ),
        pytest.param(
            '[[sources]]\nname = "orders"\n',
            "sources[0].connector: Field required",
            id="missing-connector",
        ),
        pytest.param(
            '[[sources]]\nname = "my orders"\nconnector = "c"\n',
            "sources[0].name: invalid name 'my orders'",
            id="bad-source-name",
        ),
        pytest.param(
            'timezone = "Mars/Olympus"\n',
            "timezone: unknown time zone 'Mars/Olympus'",
            id="bad-timezone",
        ),
        pytest.param(
            "[api_server]\nport = 70000\n",
            "api_server.port: Input should be less than or equal to 65535",
            id="bad-port",
        ),
        pytest.param(
            SOURCE + 'retry = { backoff = "1m", max_backoff = "30s" }\n',
            "sources[0].retry.max_backoff: must not be shorter than backoff (1m)",
            id="max-backoff-below-backoff",
        ),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert f"{tmp_path / 'synchestra.toml'}: {expected}" in message


def test_every_error_is_reported_on_its_own_line(tmp_path: Path) -> None:
    text = SOURCE + 'priority = "high"\nschedule = "61 * * * *"\ncolour = "red"\n'
    lines = load_error(tmp_path, text).splitlines()
    assert len(lines) == 3
    assert [line.split(": ")[1] for line in lines] == [
        "sources[0].schedule",
        "sources[0].priority",
        "sources[0].colour",
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_config(path)


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[database]\nurl = "sqlite:///x.db"\nport = \n')
    assert "invalid TOML" in message
    assert "line 3, column 8" in message


def test_parse_config_uses_origin() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"engine": {"workers": 0}}, origin="inline")
    assert str(caught.value) == (
        "inline: engine.workers: Input should be greater than or equal to 1"
    )


# --- paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/s.db", "sqlite:///{base}/data/s.db"),
        ("sqlite+aiosqlite:///s.db?timeout=5", "sqlite+aiosqlite:///{base}/s.db?timeout=5"),
        ("sqlite:////var/lib/s.db", "sqlite:////var/lib/s.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
    ],
)
def test_sqlite_paths_are_relative_to_the_config_file(
    tmp_path: Path, url: str, expected: str
) -> None:
    config = parse_config({"database": {"url": url}}, base_dir=tmp_path)
    assert config.database.url == expected.format(base=tmp_path.resolve().as_posix())


def test_config_works_from_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write(folder, '[database]\nurl = "sqlite:///s.db"\n[targets]\nimport = "t.csv"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "conf" / "synchestra.toml")
    assert config.database.url == f"sqlite:///{folder.resolve().as_posix()}/s.db"
    assert config.targets.import_ == folder.resolve() / "t.csv"
    assert load_config(path) == config


def test_absolute_targets_import_is_untouched(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "t.csv"
    config = parse_config({"targets": {"import": str(absolute)}}, base_dir=tmp_path / "x")
    assert config.targets.import_ == absolute


def test_resolve_config_path_prefers_explicit(tmp_path: Path) -> None:
    write(tmp_path, "")
    explicit = Path("other.toml")
    env = {"SYNCHESTRA_CONFIG": "/etc/s.toml"}
    assert resolve_config_path(explicit, env, tmp_path) == explicit


def test_resolve_config_path_prefers_local_file_to_env(tmp_path: Path) -> None:
    local = write(tmp_path, "")
    env = {"SYNCHESTRA_CONFIG": "/etc/s.toml"}
    assert resolve_config_path(None, env, tmp_path) == local


def test_resolve_config_path_falls_back_to_env(tmp_path: Path) -> None:
    env = {"SYNCHESTRA_CONFIG": "/etc/s.toml"}
    assert resolve_config_path(None, env, tmp_path) == Path("/etc/s.toml")
    relative = {"SYNCHESTRA_CONFIG": "conf/s.toml"}
    assert resolve_config_path(None, relative, tmp_path) == tmp_path / "conf" / "s.toml"


def test_resolve_config_path_without_any_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config_path(None, {}, tmp_path)
    assert str(caught.value) == (
        "no config: pass -c FILE, create ./synchestra.toml or set SYNCHESTRA_CONFIG"
    )


def test_loaded_config_is_a_config(tmp_path: Path) -> None:
    assert isinstance(load_config(write(tmp_path, "")), Config)


def test_a_decorated_source_naming_an_unknown_api_is_refused_at_once() -> None:
    """Found when the source is defined, not when the dispatcher first needs the API."""
    orc = Orchestrator(database_url="sqlite://")

    with pytest.raises(ConfigError, match="source 'scores': unknown api 'nope'"):

        @orc.source("scores", api="nope")
        async def scores(ctx: SyncContext) -> None:
            return None

    assert "scores" not in orc.sources
