"""What a source function receives: :class:`SyncContext`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from synchestra.core.clock import Clock
from synchestra.core.errors import InputError, NotConfigured
from synchestra.core.models import NO_TARGET, Mode, Run, Target
from synchestra.core.records import ChangeCounts, Record, RecordScope
from synchestra.core.redact import Redactor
from synchestra.core.workers import Fence
from synchestra.store.abc import RecordStore
from synchestra.upstream.client import get_json

KeySpec = str | Iterable[str] | Callable[[Mapping[str, Any]], str]


def record_key(row: Mapping[str, Any], key: KeySpec) -> str:
    """The record key of ``row``: one field, several fields joined by ``|``, or a function."""
    if callable(key):
        return str(key(row))
    fields = [key] if isinstance(key, str) else list(key)
    missing = [name for name in fields if row.get(name) in (None, "")]
    if missing:
        raise InputError(f"record has no key field {', '.join(missing)}: {sorted(row)[:10]}")
    return "|".join(str(row[name]) for name in fields)


@dataclass(frozen=True)
class Alert:
    """An alert a run raised; the engine publishes it (``alert.raised``) if the run succeeds."""

    alert: str
    message: str
    details: Mapping[str, Any]


class SyncContext:
    """One run's view of the world: its target, mode and params, its API, its records.

    Records written with :meth:`upsert` are committed at once (a crash keeps
    them; re-running is idempotent); deletions asked with :meth:`delete_missing`
    and the watermark from :meth:`set_watermark` take effect only if the run
    succeeds.
    """

    def __init__(
        self,
        *,
        run: Run,
        target: Target | None,
        mode: Mode,
        params: Mapping[str, Any],
        store: RecordStore,
        clock: Clock,
        watermark: Any,
        http_factory: Callable[[], httpx.AsyncClient] | None,
        api: str | None,
        on_progress: Callable[[int, int | None], None],
        log: logging.LoggerAdapter[logging.Logger],
        last_success: datetime | None = None,
    ) -> None:
        self.run = run
        self.target = target
        self.mode = mode
        self.params = params
        self.clock = clock
        self.log = log
        self.api = api
        self._store = store
        self._watermark = watermark
        self._watermark_set = False
        self._http_factory = http_factory
        self._on_progress = on_progress
        self.changes: dict[str, ChangeCounts] = {}
        self.pending_deletes: list[str] = []
        self.last_success = last_success
        """When this source last succeeded for this target (None: this is the first sync)."""
        self.alerts: list[Alert] = []

    @property
    def source(self) -> str:
        return self.run.source

    @property
    def http(self) -> httpx.AsyncClient:
        """The client bound to this source's API (base URL, auth, rate limit)."""
        if self._http_factory is None:
            raise NotConfigured(f"not configured: source {self.source!r} names no api")
        return self._http_factory()

    async def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON; error statuses raise ``HTTPFailure`` ("HTTP 503 from api")."""
        return await get_json(self.http, self.api or "api", url, params)

    @property
    def watermark(self) -> Any:
        return self._watermark

    def set_watermark(self, value: Any) -> None:
        self._watermark = value
        self._watermark_set = True

    @property
    def watermark_changed(self) -> bool:
        return self._watermark_set

    def now(self) -> datetime:
        return self.clock.now()

    def progress(self, done: int, total: int | None = None) -> None:
        self._on_progress(done, total)

    async def upsert(
        self, kind: str, rows: Iterable[Mapping[str, Any]], key: KeySpec = "id"
    ) -> ChangeCounts:
        """Store ``rows`` as records of ``kind``; counts created / updated / unchanged."""
        keyed = [(record_key(row, key), dict(row)) for row in rows]
        counts = await self._store.upsert_records(
            self.scope(kind), keyed, self.clock.now(), fence=self._fence()
        )
        self.changes.setdefault(kind, ChangeCounts()).add(counts)
        return counts

    def alert(self, alert: str, message: str, **details: Any) -> None:
        """Raise an alert (``alert.raised``), published only if the run succeeds.

        ``alert`` names what happened (``violation.new``), ``message`` says it to
        a person, ``details`` are JSON values.
        """
        self.alerts.append(Alert(alert, message, details))

    async def stored(self, kind: str, *, limit: int = 10_000) -> list[Record]:
        """The live records of ``kind`` of this target as stored now (before this run's)."""
        target = self.target.key if self.target else NO_TARGET
        return await self._store.all_records(kind, target, limit=limit)

    def scope(self, kind: str) -> RecordScope:
        """The records of ``kind`` this attempt writes."""
        target = self.target.key if self.target else None
        return RecordScope(kind, target, self.source, self.run.id, self.run.attempts)

    def _fence(self) -> Fence | None:
        """Writes are this run's only while its process still owns it (another may take it)."""
        run = self.run
        return Fence(run.id, run.attempts, run.worker) if run.worker is not None else None

    def delete_missing(self, kind: str) -> None:
        """In a full run, mark deleted the records of ``kind`` this run did not upsert.

        Applied only when the run succeeds; an incremental run deletes nothing.
        """
        if self.mode is Mode.FULL and kind not in self.pending_deletes:
            self.pending_deletes.append(kind)

    def totals(self) -> ChangeCounts:
        total = ChangeCounts()
        for counts in self.changes.values():
            total.add(counts)
        return total


class SourceLogger(logging.LoggerAdapter[logging.Logger]):
    """A source's logger: its lines carry source and target, and never a secret."""

    def __init__(self, logger: logging.Logger, redactor: Redactor, extra: Mapping[str, Any]):
        super().__init__(logger, extra)
        self._redactor = redactor

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Format first, then mask: a secret may arrive through the ``%`` arguments too."""
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        extra = self.extra or {}
        source, target = extra.get("source"), extra.get("target")
        where = f"{source}/{target}" if target else f"{source}"
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "[%s] %s", where, self._redactor.redact(text), **kwargs)
