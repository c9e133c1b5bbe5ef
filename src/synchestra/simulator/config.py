"""The simulator's knobs: one frozen :class:`ApiConfig` per simulated API.

Frozen so a running simulator can hand its config out (``/_counters``) and
tests can derive variants with :func:`dataclasses.replace` without aliasing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

ApiName = Literal["qcmobile", "datahub", "saferweb", "erp"]
API_NAMES: tuple[ApiName, ...] = ("qcmobile", "datahub", "saferweb", "erp")

FaultKind = Literal["status", "timeout", "malformed", "truncated", "maintenance"]

MAX_HOLD_SECONDS = 300.0
"""Upper bound for any simulated hang, so a forgotten timeout can never wedge a run."""


@dataclass(frozen=True)
class TargetFault:
    """Always fail requests for one target (a DOT number, or an ERP collection).

    Lets a test prove a failure lands on exactly one source and one target.
    """

    target: str
    status: int = 500
    kind: FaultKind = "status"


@dataclass(frozen=True)
class FaultConfig:
    """Failures an API injects; random ones draw from the seeded RNG.

    ``burst`` makes the first N requests (after start or :meth:`reset`) fail
    with ``burst_status``; ``timeout_seconds`` is how long a timeout fault
    holds the request (then it answers 504) and is capped at
    :data:`MAX_HOLD_SECONDS`. ``maintenance`` serves QCMobile's HTML
    maintenance page (HTTP 200) to every request.
    """

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    burst: int = 0
    burst_status: int = 503
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    maintenance: bool = False
    targets: tuple[TargetFault, ...] = ()

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.timeout_rate, self.malformed_rate, self.truncated_rate)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise ValueError("fault rates must each be within 0..1 and sum to at most 1")
        if not 0.0 <= self.timeout_seconds <= MAX_HOLD_SECONDS:
            raise ValueError(f"timeout_seconds must be within 0..{MAX_HOLD_SECONDS:g}")
        if self.burst < 0 or not self.error_statuses:
            raise ValueError("burst must be >= 0 and error_statuses non-empty")


@dataclass(frozen=True)
class ApiConfig:
    """How one API behaves: latency, limits, credentials and faults.

    ``rate`` admits at most that many requests in any sliding window of
    ``rate_window`` seconds (default one second); tests use a long window so
    the outcome does not depend on how fast the machine is. ``concurrency``
    caps requests in flight; both answer 429 with ``Retry-After``. ``keys``
    are the accepted credentials (QCMobile ``webKey``, SaferWebAPI
    ``x-api-key``, DataHub ``X-App-Token``; for DataHub an empty tuple
    accepts any token and no token at all, as Socrata does).
    """

    latency: float = 0.0
    rate: int | None = None
    rate_window: float = 1.0
    concurrency: int | None = None
    keys: tuple[str, ...] = ()
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.latency <= MAX_HOLD_SECONDS:
            raise ValueError(f"latency must be within 0..{MAX_HOLD_SECONDS:g} seconds")
        if self.rate is not None and self.rate < 1:
            raise ValueError("rate must be >= 1 (or None for unlimited)")
        if self.rate_window <= 0:
            raise ValueError("rate_window must be > 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1 (or None for unlimited)")


DEFAULT_WEBKEY = "sim-webkey"
DEFAULT_SAFERWEB_KEY = "sim-saferweb-key"


@dataclass(frozen=True)
class ErpSizes:
    """How many records each ERP collection starts with."""

    customers: int = 120
    products: int = 60
    prices: int = 120
    orders: int = 400


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator needs; equal configs give identical data.

    Carriers get DOT numbers ``first_dot``, ``first_dot + dot_step``, ...;
    ``big_carriers`` of them (spread evenly, the first included) have
    ``big_carrier_rows`` violation rows, more than one Socrata page.
    ``as_of`` anchors every generated date so data does not drift with
    the calendar.
    """

    carriers: int = 25
    seed: int = 0
    port: int = 0
    first_dot: int = 1_000_001
    dot_step: int = 10
    big_carriers: int = 1
    big_carrier_rows: int = 2_500
    duplicate_rate: float = 0.02
    as_of: date = date(2026, 9, 1)
    erp_sizes: ErpSizes = field(default_factory=ErpSizes)
    qcmobile: ApiConfig = field(default_factory=lambda: ApiConfig(keys=(DEFAULT_WEBKEY,)))
    datahub: ApiConfig = field(default_factory=ApiConfig)
    saferweb: ApiConfig = field(default_factory=lambda: ApiConfig(keys=(DEFAULT_SAFERWEB_KEY,)))
    erp: ApiConfig = field(default_factory=ApiConfig)

    def __post_init__(self) -> None:
        if self.carriers < 0 or self.big_carriers < 0 or self.big_carriers > self.carriers:
            raise ValueError("need 0 <= big_carriers <= carriers")
        last = self.first_dot + max(self.carriers - 1, 0) * self.dot_step
        if self.first_dot < 1 or self.dot_step < 1 or last > 99_999_999:
            raise ValueError("DOT numbers must stay within 1..99999999")
        if not 0 <= self.port <= 65_535:
            raise ValueError("port must be within 0..65535")
        if not 0.0 <= self.duplicate_rate <= 0.5:
            raise ValueError("duplicate_rate must be within 0..0.5")

    def api(self, name: ApiName) -> ApiConfig:
        """The config of one API by its name."""
        configs = {
            "qcmobile": self.qcmobile,
            "datahub": self.datahub,
            "saferweb": self.saferweb,
            "erp": self.erp,
        }
        return configs[name]

    def with_api(self, name: ApiName, config: ApiConfig) -> SimulatorConfig:
        """A copy with ``name``'s config replaced."""
        changes: dict[str, Any] = {name: config}
        return replace(self, **changes)
