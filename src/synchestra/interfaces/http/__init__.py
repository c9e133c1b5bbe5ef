"""The HTTP API of the contract: :func:`create_app` builds it over an open orchestrator."""

from synchestra.interfaces.http.app import create_app

__all__ = ["create_app"]
