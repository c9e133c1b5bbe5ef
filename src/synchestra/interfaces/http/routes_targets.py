"""Targets and synced records: ``/api/targets...`` and ``/api/records/{kind}``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from synchestra.core.errors import InputError, UnknownTarget
from synchestra.core.models import Target, parse_instant, validate_target_key
from synchestra.core.records import RecordQuery
from synchestra.engine import status as views
from synchestra.interfaces.documents import (
    record_document,
    target_document,
    target_status_document,
)
from synchestra.interfaces.http.deps import Orc
from synchestra.interfaces.http.errors import HttpProblem
from synchestra.interfaces.http.schemas import (
    TARGET_PAGE,
    RecordPage,
    TargetCreate,
    TargetOut,
    TargetPage,
    TargetStatus,
)
from synchestra.interfaces.http.schemas import errors as error_codes

MAX_LIMIT = 10_000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(description="the next_cursor of the previous page")]
ChangedSince = Annotated[
    str | None, Query(description="ISO 8601: only records changed after this instant")
]
IncludeDeleted = Annotated[bool, Query(description="list records the source no longer has")]
JSON = "application/json"


def _instant(text: str | None) -> datetime | None:
    """``changed_since`` as an aware UTC instant, or a 422 naming the field.

    An instant whose UTC form falls outside years 1-9999 (``0001-01-01T00:00:00+14:00``)
    overflows the conversion: that is bad input too, not an internal error.
    """
    if text is None:
        return None
    try:
        return parse_instant(text)
    except (InputError, OverflowError) as error:
        message = str(error) if isinstance(error, InputError) else f"out of range: {text!r}"
        detail = [{"field": "changed_since", "message": message}]
        raise HttpProblem(422, "invalid request: changed_since", detail) from None


def target_page(found: Sequence[Target], limit: int) -> Response:
    """The first ``limit`` of ``found`` as a :class:`TargetPage`, serialized once.

    ``found`` holds one target more than the page when there is a next page. Returning
    a Response spares FastAPI validating the document against the response model and
    then serializing it; :data:`TARGET_PAGE` checks the types as it serializes.
    """
    page = found[:limit]
    document: TargetPage = {
        "targets": [{"key": t.key, "name": t.name, "attrs": dict(t.attrs)} for t in page],
        "next_cursor": page[-1].key if len(found) > limit and page else None,
    }
    return Response(TARGET_PAGE.dump_json(document, warnings="error"), media_type=JSON)


router = APIRouter(tags=["targets"])


async def records_page(orc: Orc, query: RecordQuery) -> dict[str, Any]:
    """A page of records; with ``changed_since``, each with its ``previous`` data."""
    rows, next_cursor = await orc.store.list_records(query)
    listed = [record_document(row) for row in rows]
    since = query.changed_since
    if since is not None:  # what each record was at that instant (None: not there yet)
        versions = await orc.store.versions_at([row.id for row in rows], since)
        for record, row in zip(listed, rows, strict=True):
            unchanged_data = row.data if row.first_seen <= since else None  # only deleted
            record["previous"] = versions.get(row.id, unchanged_data)
    return {"records": listed, "next_cursor": next_cursor}


def _query(
    kind: str,
    target: str | None,
    limit: int,
    cursor: str | None,
    changed_since: str | None,
    include_deleted: bool,
) -> RecordQuery:
    return RecordQuery(
        kind=kind,
        target=target,
        changed_since=_instant(changed_since),
        include_deleted=include_deleted,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/api/targets", response_model=TargetPage, responses=error_codes(422), summary="targets"
)
async def list_targets(orc: Orc, limit: Limit = 100, cursor: Cursor = None) -> Response:
    return target_page(await orc.store.list_targets(limit=limit + 1, after=cursor), limit)


@router.post(
    "/api/targets",
    status_code=201,
    response_model=TargetOut,
    responses=error_codes(422),
    summary="add (or replace) a target",
)
async def add_target(orc: Orc, body: TargetCreate) -> dict[str, Any]:
    target = Target(validate_target_key(body.key), body.name, dict(body.attrs))
    await orc.add_targets([target])
    return target_document(target)


@router.get(
    "/api/targets/{key:path}/records/{kind}",
    response_model=RecordPage,
    response_model_exclude_unset=True,  # `previous` only with changed_since
    responses=error_codes(404, 422),
    summary="the synced records of a kind for one target",
)
async def target_records(
    orc: Orc,
    key: str,
    kind: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    changed_since: ChangedSince = None,
    include_deleted: IncludeDeleted = False,
) -> dict[str, Any]:
    if await orc.store.get_target(key) is None:
        raise HttpProblem(404, str(UnknownTarget(key)))
    query = _query(kind, key, limit, cursor, changed_since, include_deleted)
    return await records_page(orc, query)


@router.get(
    "/api/records/{kind}",
    response_model=RecordPage,
    response_model_exclude_unset=True,  # `previous` only with changed_since
    responses=error_codes(422),
    summary="the synced records of a kind, across targets",
)
async def all_records(
    orc: Orc,
    kind: str,
    target: Annotated[str | None, Query(description="only this target's records")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    changed_since: ChangedSince = None,
    include_deleted: IncludeDeleted = False,
) -> dict[str, Any]:
    query = _query(kind, target, limit, cursor, changed_since, include_deleted)
    return await records_page(orc, query)


@router.get(
    "/api/targets/{key:path}",
    response_model=TargetStatus,
    responses=error_codes(404),
    summary="one target with its sync status",
)
async def get_target(orc: Orc, key: str) -> dict[str, Any]:
    try:
        status = await views.target_status(orc.store, orc.sources, key)
    except UnknownTarget as error:
        raise HttpProblem(404, str(error)) from None
    return target_status_document(status)


@router.delete(
    "/api/targets/{key:path}",
    status_code=204,
    response_class=Response,
    responses=error_codes(404),
    summary="remove a target",
)
async def remove_target(orc: Orc, key: str) -> Response:
    if not await orc.store.remove_target(key, orc.clock.now()):
        raise HttpProblem(404, str(UnknownTarget(key)))
    return Response(status_code=204)
