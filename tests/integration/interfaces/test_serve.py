"""``synchestra serve`` refuses to expose an API without a token, except on loopback when told."""

from __future__ import annotations

import pytest

from synchestra.config import ApiServerConfig
from synchestra.core.errors import ConfigError
from synchestra.interfaces.serve import api_token, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_token_comes_from_the_configured_variable() -> None:
    settings = ApiServerConfig(token_env="MY_TOKEN")
    assert api_token(settings, {"MY_TOKEN": "t0ken-value"}, no_auth=False) == "t0ken-value"


def test_no_token_is_refused_unless_loopback_and_no_auth() -> None:
    with pytest.raises(ConfigError, match="no API token: set SYNCHESTRA_API_TOKEN"):
        api_token(ApiServerConfig(), {}, no_auth=False)
    assert api_token(ApiServerConfig(host="127.0.0.1"), {}, no_auth=True) is None
    with pytest.raises(ConfigError, match="only allowed on a loopback address"):
        api_token(ApiServerConfig(host="0.0.0.0"), {}, no_auth=True)
