"""``synchestra simulate``: the simulated APIs alone, until a signal or a duration.

Option parsing into a :class:`SimulatorConfig` and the serving loop; the
command's options are declared in :mod:`synchestra.cli`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace

from synchestra.core.errors import InputError
from synchestra.simulator.config import API_NAMES, ApiName, SimulatorConfig
from synchestra.simulator.server import Simulator, SimulatorError, run_simulator


def build_config(
    *,
    port: int,
    carriers: int,
    seed: int,
    latency: float,
    rates: Sequence[str],
) -> SimulatorConfig:
    """A config from the command's options; InputError names a bad one."""
    try:
        config = SimulatorConfig(carriers=carriers, seed=seed, port=port)
        limits = parse_rates(rates)
        for name in API_NAMES:
            api = replace(config.api(name), latency=latency, rate=limits.get(name))
            config = config.with_api(name, api)
        return config
    except ValueError as error:
        raise InputError(f"invalid simulator option: {error}") from None


def parse_rates(items: Sequence[str]) -> dict[ApiName, int]:
    """``["datahub=10", ...]`` as requests per second per API."""
    rates: dict[ApiName, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        api = next((known for known in API_NAMES if known == name.strip()), None)
        if not sep or api is None:
            raise InputError(f"invalid --rate {item!r}: expected API=N, API one of {API_NAMES}")
        if not value.strip().isdigit() or int(value) < 1:
            raise InputError(f"invalid --rate {item!r}: N must be a whole number >= 1")
        rates[api] = int(value)
    return rates


def describe(sim: Simulator) -> list[str]:
    """The lines the command prints: base URLs, credentials, counters URL."""
    lines = [f"{name:9} {url}" for name, url in sim.base_urls().items()]
    lines.append(f"counters  {sim.counters_url}")
    lines.append(
        f"keys      webKey={','.join(sim.api_config('qcmobile').keys)} "
        f"x-api-key={','.join(sim.api_config('saferweb').keys)}"
    )
    dots = sim.data.dots
    if dots:
        lines.append(
            f"carriers  {len(dots)} (DOT {dots[0]}..{dots[-1]} step {sim.config.dot_step})"
        )
    return lines


async def serve(
    config: SimulatorConfig, duration: float | None, echo: Callable[[str], None]
) -> None:
    """Run until SIGINT/SIGTERM or ``duration`` seconds; print where to connect."""
    try:
        async with run_simulator(config) as sim:
            for line in describe(sim):
                echo(line)
            await _wait_for_stop(duration)
    except SimulatorError as error:
        raise InputError(str(error)) from None


async def _wait_for_stop(duration: float | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    try:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
