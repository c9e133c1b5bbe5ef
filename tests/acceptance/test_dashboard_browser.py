"""The dashboard in a real browser: Debian's Chromium, driven by Playwright.

The app is served by uvicorn on 127.0.0.1 in the test's own event loop, beside
the orchestrator and Playwright. The test signs in, presses "sync now" and
watches a grid cell go from never-run to running (the source waits on a gate
the test holds) to succeeded, through the event stream, without a reload. It
leaves a screenshot, ``dashboard.png``, in the test's output folder (pytest's
``tmp_path``, printed at the end).

Waiting is Playwright's: assertions poll the page until they hold or time out.
Without Chromium or Playwright the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine_helpers import opened
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app
from synchestra.interfaces.servers import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",  # this machine refuses outside connections
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token"
GREEN = "rgb(46, 157, 91)"
RED = "rgb(214, 69, 69)"

try:
    from playwright.async_api import Browser, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

if os.environ.get("CI") != "true":
    pytestmark = pytest.mark.skipif(
        async_playwright is None or not CHROMIUM.exists(),
        reason="needs Playwright and Debian's chromium (/usr/bin/chromium)",
    )


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def orc(
    database_url: str, clock: FakeClock, gate: asyncio.Event
) -> AsyncIterator[Orchestrator]:
    def setup(orc: Orchestrator) -> None:
        @orc.source("profile", per_target=True)
        async def profile(ctx: SyncContext) -> None:
            assert ctx.target is not None
            if ctx.target.key == "dot:2":
                raise RuntimeError("profile service refused dot:2")
            await gate.wait()

    async with opened(database_url, clock, setup=setup) as orchestrator:
        await orchestrator.add_targets([Target("dot:1", "Alpha"), Target("dot:2", "Beta")])
        yield orchestrator


async def test_sync_now_recolours_the_cell_live(
    orc: Orchestrator, chromium: Browser, gate: asyncio.Event, tmp_path: Path
) -> None:
    orc.start(schedule=False)
    async with serving(create_app(orc, token=TOKEN)) as port:
        page = await chromium.new_page(viewport={"width": 1280, "height": 900})
        failures: list[str] = []
        page.on("pageerror", lambda error: failures.append(str(error)))

        await page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")
        assert page.url == f"http://127.0.0.1:{port}/"  # signed in, token out of the address
        await expect(page.locator("#live")).to_have_text("live")
        await page.evaluate("window.notReloaded = true")

        cell = page.locator('.cell[data-target="dot:1"][data-source="profile"]')
        failing = page.locator('.cell[data-target="dot:2"][data-source="profile"]')
        await expect(cell).to_have_attribute("data-state", "never")

        await page.click('button.sync-now[data-source="profile"]')
        await expect(cell).to_have_attribute("data-state", "running")
        await expect(failing).to_have_attribute("data-state", "failed")
        gate.set()
        await expect(cell).to_have_attribute("data-state", "succeeded")
        await expect(cell).to_have_css("background-color", GREEN)
        await expect(failing).to_have_css("background-color", RED)
        assert await page.evaluate("window.notReloaded") is True

        await failing.click()  # the error, one click away
        await expect(page.locator("#target")).to_contain_text("profile service refused dot:2")

        bars = page.locator("svg.timeline rect.bar")
        await expect(bars).to_have_count(2)  # both runs, in the timeline

        await page.fill("#search", "beta")
        await expect(page.locator(".target-link")).to_have_text(["dot:2"])

        screenshot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert failures == []
        print(f"screenshot: {screenshot}")
        await page.close()  # ends its event stream before the server stops
