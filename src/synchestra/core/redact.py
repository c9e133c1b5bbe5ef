"""Keeping credentials out of messages, logs and run history.

Some APIs take their key as a query parameter (``?webKey=...``), so any URL that
ends up in an error message or a log line may carry a secret. Two defences:
:class:`Redactor` knows the actual secret values loaded from the environment and
masks them wherever they appear; :func:`redact_url` masks the values of
credential-named query parameters even when the value is not known (a key
typed into a config URL by hand, say).
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask innocent text ("1", "abc") everywhere

# Parameter names that carry credentials, matched case-insensitively and only as
# whole names (``key=`` but not ``monkey=``). ``%24`` is a percent-encoded ``$``.
_CREDENTIAL_NAMES = (
    r"webkey",
    r"api[_-]?key",
    r"key",
    r"access[_-]?token",
    r"token",
    r"(?:\$\$|%24%24)app_token",
    r"secret",
    r"client[_-]?secret",
    r"password",
)
_CREDENTIAL_PARAM = re.compile(
    r"(?P<name>(?:^|[?&;])(?:" + "|".join(_CREDENTIAL_NAMES) + r")=)(?P<value>[^&#;\s\"'<>]*)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """Mask the values of credential-named query parameters in ``url`` (or any text).

    ``https://x/qc?webKey=abc123&day=1`` becomes ``https://x/qc?webKey=***&day=1``.
    """
    return _CREDENTIAL_PARAM.sub(_mask_value, url)


def _mask_value(match: re.Match[str]) -> str:
    return match["name"] + (MASK if match["value"] else "")


class Redactor:
    """The secret values in use, and the masking of them in any text.

    Secrets are registered when clients are built from the environment, so
    everything that reports errors can share one redactor.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"  # never the values

    def add(self, secret: str) -> None:
        """Register ``secret``; its URL-encoded forms are registered too.

        Values shorter than :data:`MIN_SECRET_LENGTH` are ignored: masking them
        would garble ordinary text and they are no real secret anyway.
        """
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            if len(form) >= MIN_SECRET_LENGTH:
                self._secrets.add(form)

    def redact(self, text: str) -> str:
        """``text`` with every known secret and every credential parameter value masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first
            text = text.replace(secret, MASK)
        return redact_url(text)
