"""What the route handlers depend on, from the application's state (set by ``create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from synchestra.engine.orchestrator import Orchestrator


def orchestrator(request: Request) -> Orchestrator:
    """The open orchestrator the application serves."""
    orc: Orchestrator = request.app.state.orchestrator
    return orc


Orc = Annotated[Orchestrator, Depends(orchestrator)]
