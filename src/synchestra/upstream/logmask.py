"""Masking credentials in httpx's own request log.

httpx logs every request at INFO as ``HTTP Request: GET <url> ...`` with the
full URL, and QCMobile's ``webKey`` travels in the URL (the API auth adds it as
a query parameter). Anyone who turns on INFO logging would then write the key
to their logs. The filter installed here rewrites those lines with
:func:`synchestra.core.redact.redact_url` before any handler sees them.

:func:`synchestra.upstream.client.build_client` installs it; installing it twice is harmless.
"""

from __future__ import annotations

import logging

from synchestra.core.redact import redact_url

HTTPX_LOGGER = "httpx"


class MaskCredentialParams(logging.Filter):
    """Masks credential-named query parameter values (``webKey=***``) in a log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_httpx_request_log() -> None:
    """Install :class:`MaskCredentialParams` on the httpx logger, once."""
    logger = logging.getLogger(HTTPX_LOGGER)
    if not any(isinstance(f, MaskCredentialParams) for f in logger.filters):
        logger.addFilter(MaskCredentialParams())
