"""``synchestra demo``: the first sync with its two injected faults, then the dashboard served.

The demo runs against its own simulator on loopback, in ``tmp_path``. A visitor
stands in for the person who opens the printed URL: the demo stops when it is done.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
from rich.console import Console

from synchestra.demo.run import run_demo

CARRIERS = 4


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


async def test_demo_syncs_the_fleet_and_stops_after_the_first_sync(tmp_path: Path) -> None:
    terminal, out = console()
    code = await run_demo(
        tmp_path / "demo", carriers=CARRIERS, duration=0, port=0, console=terminal
    )
    text = out.getvalue()
    assert code == 0
    assert (
        f"first sync: {CARRIERS} carriers, {CARRIERS - 2} fully synced, 2 with a failed source"
        in text
    )
    assert "HTTP 503 from datahub" in text and "HTTP 500 from saferweb" in text
    mirrored = re.search(
        r"ERP mirrored: orders (\d+), customers (\d+), products \d+, prices \d+", text
    )
    assert mirrored is not None and int(mirrored.group(1)) > 0  # orders first (priority 4)
    assert "(4 of 4 collections" in text
    assert "dashboard:" not in text
    assert (tmp_path / "demo" / "demo.db").exists()


async def test_demo_serves_the_dashboard_at_the_printed_url(tmp_path: Path) -> None:
    terminal, out = console()
    seen: dict[str, str] = {}

    async def visit(url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(url)
            seen["page"] = page.text
            seen["grid"] = (await browser.get(url.split("?")[0] + "ui/grid")).text
            seen["chart"] = (await browser.get(url.split("?")[0] + "ui/targets/dot:1000001")).text

    code = await run_demo(
        tmp_path / "demo", carriers=CARRIERS, duration=60, port=0, console=terminal, visitor=visit
    )
    text = out.getvalue()
    assert code == 0
    printed = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", text)
    assert printed is not None
    token = printed.group(1).split("token=")[1]
    assert f"token: {token}" in text
    assert 'id="grid"' in seen["page"]
    assert seen["grid"].count('class="target-link"') == CARRIERS
    assert 'class="cell failed"' in seen["grid"]  # the injected faults, in red
    # three SMS runs synced before serving: each BASIC chart has a history
    assert seen["chart"].count('<polyline class="series"') >= 1
