"""Reading targets from CSV: a header row naming ``key``, ``name``, then one column per attr."""

from __future__ import annotations

import csv
from pathlib import Path

from synchestra.core.errors import InputError
from synchestra.core.models import Target, validate_target_key


def read_targets_csv(path: Path) -> list[Target]:
    """Parse the whole file first, so a bad row changes nothing."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "key" not in reader.fieldnames:
                raise InputError(f"{path}: the header row must name a 'key' column")
            return [_row_target(path, number, row) for number, row in enumerate(reader, start=2)]
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    except csv.Error as error:
        raise InputError(f"{path}: invalid CSV ({error})") from None


def _row_target(path: Path, line: int, row: dict[str, str | None]) -> Target:
    key = (row.get("key") or "").strip()
    try:
        validate_target_key(key)
    except InputError as error:
        raise InputError(f"{path}:{line}: {error}") from None
    attrs = {
        column: value
        for column, value in row.items()
        if column not in ("key", "name") and column is not None and value not in (None, "")
    }
    return Target(key=key, name=(row.get("name") or "").strip(), attrs=attrs)
