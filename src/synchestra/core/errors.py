"""The exception tree of synchestra.

::

    SynchestraError
    ├── ConfigError          invalid configuration (names the key and the file)
    ├── InputError           bad input from a user: target key, mode, request
    │   ├── UnknownSource
    │   └── UnknownTarget
    └── SyncError            raised while a source runs
        ├── NotConfigured    a credential is missing: the run is skipped
        ├── SyncTimeout      the source ran past its timeout
        ├── HTTPFailure      an HTTP error status from an API (5xx and 429 retryable)
        ├── LeaseLost        this process no longer owns the run: it writes nothing more
        └── RetryableError   any other transient failure worth another attempt

Third-party errors (httpx) are translated once, in :mod:`synchestra.upstream.errors`.
"""

from __future__ import annotations


class SynchestraError(Exception):
    """Root of every error synchestra raises on purpose."""


class ConfigError(SynchestraError):
    """The configuration is invalid; the message names the key and the file."""


class InputError(SynchestraError):
    """Input from a user (CLI, HTTP API or Python call) is invalid."""


class UnknownSource(InputError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown source {name!r}")
        self.name = name


class UnknownTarget(InputError):
    def __init__(self, key: str) -> None:
        super().__init__(f"unknown target {key!r}")
        self.key = key


class SyncError(SynchestraError):
    """A sync failed; the message is what status and run history show."""


class NotConfigured(SyncError):
    """A source lacks what it needs to run (a credential): the run is skipped."""


class SyncTimeout(SyncError):
    """A source ran past its timeout."""


class RetryableError(SyncError):
    """A transient failure: the run is retried with backoff while attempts remain."""


class HTTPFailure(SyncError):
    """An API answered with an error status.

    Only 429 and 5xx are transient; other statuses fail the run at once.
    """

    def __init__(self, status: int, api: str, detail: str | None = None) -> None:
        """``detail`` is the API's own explanation: ``HTTP 404 from qcmobile: Webkey not found``."""
        super().__init__(
            f"HTTP {status} from {api}: {detail}" if detail else f"HTTP {status} from {api}"
        )
        self.status = status
        self.api = api
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class LeaseLost(SyncError):
    """This process no longer owns the run: it was silent past its lease, or cut off.

    Another process has taken the run over; whatever this attempt would still
    write is dropped.
    """

    def __init__(self, run_id: int) -> None:
        super().__init__(f"lease lost: run {run_id} is no longer this process's")
        self.run_id = run_id
