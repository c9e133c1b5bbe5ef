"""The TOML configuration: its schema, its loading, and the target files it names.

Nothing here knows a particular provider: built-in connectors bring their own
default APIs (see :mod:`synchestra.connectors.registry`).
"""

from __future__ import annotations

from synchestra.config.loading import load_config, parse_config, parse_source, resolve_config_path
from synchestra.config.schema import (
    ApiConfig,
    ApiServerConfig,
    AuthConfig,
    Config,
    DatabaseConfig,
    EngineConfig,
    GroupConfig,
    RetryConfig,
    SourceConfig,
    SourceSettings,
    TargetsConfig,
)

__all__ = [
    "ApiConfig",
    "ApiServerConfig",
    "AuthConfig",
    "Config",
    "DatabaseConfig",
    "EngineConfig",
    "GroupConfig",
    "RetryConfig",
    "SourceConfig",
    "SourceSettings",
    "TargetsConfig",
    "load_config",
    "parse_config",
    "parse_source",
    "resolve_config_path",
]
