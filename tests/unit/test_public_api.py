"""The public Python API: what ``synchestra`` exports, and the README's example."""

from __future__ import annotations

import re
from pathlib import Path

import synchestra
from paths import REPO
from synchestra import Orchestrator, SyncContext
from synchestra.core.records import RecordQuery

README = REPO / "README.md"


PUBLIC_NAMES = {
    "Clock", "ConfigError", "Event", "EventBus", "FakeClock", "HTTPFailure", "InputError",
    "Mode", "NotConfigured", "Orchestrator", "RetryPolicy", "RetryableError", "Run",
    "RunState", "SyncContext", "SyncError", "SyncSummary", "SyncTimeout", "SynchestraError",
    "SystemClock", "Target",
}  # fmt: skip
"""What ``synchestra`` exported before the layout moved (issue 11): none may go."""


def test_no_public_name_was_lost() -> None:
    assert set(synchestra.__all__) >= PUBLIC_NAMES


def test_exported_members_exist_and_are_listed_once() -> None:
    assert len(set(synchestra.__all__)) == len(synchestra.__all__)
    for name in synchestra.__all__:
        assert getattr(synchestra, name) is not None, name
    assert {"Orchestrator", "SyncContext", "NotConfigured", "RetryPolicy"} <= set(
        synchestra.__all__
    )


async def test_readme_example_runs(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    code = block.replace("sqlite:///synchestra.db", f"sqlite:///{tmp_path}/readme.db")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    orc = namespace["orc"]
    assert isinstance(orc, Orchestrator)
    async with orc:
        summary = await orc.sync()
        assert (summary.total, summary.succeeded) == (1, 1)
        rows, _ = await orc.store.list_records(RecordQuery("order"))
        assert [row.data for row in rows] == [{"id": 1, "total": 10}]
    assert SyncContext is namespace["SyncContext"]
