"""The tables, as SQLAlchemy Core metadata shared by the store and the migrations.

"No target" is stored as the empty string so that (source, target) can be a
primary key on every database; :data:`synchestra.core.models.NO_TARGET` names it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database.

    SQLite has no time-zone type: values are stored as naive UTC (which keeps
    their text sortable) and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

metadata = MetaData()

targets = Table(
    "targets",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("attrs", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("target", String(200), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    # Claim order: priority with aging folded in, see Store.rank_for().
    Column("rank", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("group_name", String(200)),
    Column("api", String(200)),
    Column("trigger", String(32), nullable=False),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    # Whether not_before has come: claims walk due runs in rank order without
    # skipping delayed ones; the loop promotes runs as their time comes.
    Column("due", Boolean, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("error", Text),
    Column("result", JSON),
    Column("owner", String(200)),  # the worker id; kept when the run ends
    Column("lease_until", UTCDateTime),  # unused since 0004: liveness is the worker's
    Column("continued_by", Id),
    Column("cancel_requested", Boolean, nullable=False, default=False),
)
Index("ix_runs_claim", runs.c.state, runs.c.due, runs.c.rank.desc(), runs.c.id)
Index("ix_runs_pair", runs.c.source, runs.c.target, runs.c.id)
Index("ix_runs_due", runs.c.state, runs.c.due, runs.c.not_before)
Index("ix_runs_target", runs.c.target, runs.c.id)
# Deduplication: at most one queued run per (source, target, mode), on every database.
ONLY_QUEUED = text("state = 'queued'")
Index(
    "uq_runs_queued",
    runs.c.source,
    runs.c.target,
    runs.c.mode,
    unique=True,
    sqlite_where=ONLY_QUEUED,
    postgresql_where=ONLY_QUEUED,
)

# The processes sharing the database (migration 0004). ``heartbeat_at`` is the
# database's time of the last renewal; ``dead`` is set by whoever found it silent
# for longer than the lease, so that its next renewal learns it lost its runs.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host_key", String(200), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("running", Integer, nullable=False, default=0),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("dead", Boolean, nullable=False, default=False),
)

# Elected roles (the scheduler): who holds it, in which term, until when (database time).
leadership = Table(
    "leadership",
    metadata,
    Column("role", String(50), primary_key=True),
    Column("holder", String(200)),
    Column("term", BigInteger, nullable=False, default=0),
    Column("expires_at", UTCDateTime),
)

# The dashboard: the timeline reads runs by start time, the grid the active runs of a page.
Index("ix_runs_started", runs.c.started_at)
ONLY_ACTIVE = text("state IN ('queued', 'running')")
Index(
    "ix_runs_active",
    runs.c.target,
    runs.c.source,
    sqlite_where=ONLY_ACTIVE,
    postgresql_where=ONLY_ACTIVE,
)

pair_status = Table(
    "pair_status",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("target", String(200), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("last_attempt", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_full_run", UTCDateTime),
    Column("error", Text),
    Column("error_at", UTCDateTime),
    Column("watermark", JSON),
    Column("last_run_id", Id),
)
Index("ix_pair_status_target", pair_status.c.target)
Index("ix_pair_status_state", pair_status.c.source, pair_status.c.state)

source_state = Table(
    "source_state",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("next_fire_at", UTCDateTime),
    Column("last_fire_at", UTCDateTime),
    Column("last_started", UTCDateTime),
    Column("last_finished", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_state", String(16)),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(100), nullable=False),
    Column("key", String(500), nullable=False),
    Column("target", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("data", JSON, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    Column("run_id", Id),
    Column("run_attempt", Integer),
)
Index("uq_records_key", records.c.kind, records.c.target, records.c.key, unique=True)
Index("ix_records_source", records.c.source, records.c.kind, records.c.target)
Index("ix_records_changed", records.c.kind, records.c.changed_at)

# Earlier versions of changed records: what a record was before each change, so that
# "what changed since T" can give the record as it was at T.
record_versions = Table(
    "record_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("record_id", Id, nullable=False),
    Column("data", JSON, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=False),
    Column("run_id", Id),
)
Index("ix_record_versions_record", record_versions.c.record_id, record_versions.c.valid_to)
