"""FMCSA target keys: ``dot:<USDOT number>``.

A USDOT number is the only thing of the user's that reaches an FMCSA request
(URL paths, SoQL ``$where``), so it is checked here, strictly, before any
request: 1 to 8 ASCII digits, nothing else. Anything that passes is safe to
put in a path or a quoted SoQL literal as it is.
"""

from __future__ import annotations

import re

from synchestra.core.errors import InputError
from synchestra.core.models import Target

DOT_PREFIX = "dot:"
MAX_DIGITS = 8
_SHOWN = 40  # a hostile key may be huge; errors show its start only

# [0-9], not \d: \d also matches other scripts' digits ("١٢٣"), which no API knows.
_DOT_KEY = re.compile(r"(?:dot:)?([0-9]{1,8})", re.IGNORECASE)


def normalize_dot_key(text: str) -> str:
    """The canonical target key for ``text``: ``"80321"``, ``" DOT:080321"`` -> ``"dot:80321"``.

    For the CLI and HTTP API to call on ``targets add``, so one carrier cannot
    be added twice under two spellings. Surrounding whitespace is forgiven
    (people paste numbers); anything else that is not 1 to 8 digits, with or
    without the ``dot:`` prefix, raises :class:`InputError` naming the key.
    """
    return DOT_PREFIX + _digits(text.strip(), text)


def dot_number(target: Target | str | None) -> str:
    """The USDOT number of a target (``dot:80321`` or ``80321``) as canonical digits.

    Connectors call this before sending anything: a key that is not a USDOT
    number raises :class:`InputError` naming it, and no request goes out.
    Leading zeros are dropped (``dot:00080321`` -> ``80321``): the FMCSA APIs
    write DOT numbers unpadded.
    """
    if target is None:
        raise InputError(
            "the FMCSA connectors sync one carrier per run: "
            "set per_target = true and add targets keyed dot:<USDOT number>"
        )
    key = target.key if isinstance(target, Target) else target
    return _digits(key, key)


def _digits(candidate: str, original: str) -> str:
    match = _DOT_KEY.fullmatch(candidate)
    number = match.group(1).lstrip("0") if match else ""
    if not number:  # no match, or all zeros: USDOT numbers start at 1
        raise InputError(
            f"invalid USDOT target key {_shown(original)}: expected 'dot:' and 1 to "
            f"{MAX_DIGITS} digits (e.g. 'dot:80321'), or the bare number"
        )
    return number


def _shown(key: str) -> str:
    return repr(key) if len(key) <= _SHOWN else repr(key[:_SHOWN]) + "..."
