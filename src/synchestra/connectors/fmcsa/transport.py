"""What the FMCSA connectors share beyond :mod:`synchestra.upstream.fetch`: API name, not found."""

from __future__ import annotations

from synchestra.connectors.context import SyncContext
from synchestra.core.errors import SyncError


class CarrierNotFound(SyncError):
    """The API has no carrier with this USDOT number (retrying will not help)."""

    def __init__(self, dot: str, api: str) -> None:
        super().__init__(f"carrier {dot} not found in {api}")
        self.dot = dot


def api_name(ctx: SyncContext, default: str) -> str:
    """The API the run talks to, as errors name it (a config may rename it)."""
    return ctx.api or default
