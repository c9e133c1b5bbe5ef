"""The whole ``synchestra`` command line: the product's commands, the demo's and the simulator's.

Assembled here, at the package root, because the demo and the simulator sit
beside the layers the other commands live in (:mod:`synchestra.interfaces.cli`)
and may not be imported from there.
"""

from __future__ import annotations

from synchestra.demo.command import demo
from synchestra.interfaces.cli.commands import app, main
from synchestra.simulator.command import simulate

app.command()(demo)
app.command()(simulate)

__all__ = ["app", "main"]
