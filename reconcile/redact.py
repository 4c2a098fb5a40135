"""Last line of defence for secrets: scrub API keys from any text before it leaves the process."""

from __future__ import annotations

import logging
import re

from reconcile.settings import ApiKey

# An `sk-...` token as new-api issues them, in case one arrives from somewhere unexpected.
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")


class Redactor:
    """Replaces every configured key (and anything shaped like one) with its safe reference."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._pairs = sorted(
            ((k.secret.get_secret_value(), k.ref) for k in keys), key=lambda p: -len(p[0])
        )

    def __call__(self, text: str) -> str:
        for secret, ref in self._pairs:
            if secret:
                text = text.replace(secret, f"<{ref}>")
        return _KEY_SHAPE.sub("sk-<redacted>", text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message once, redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        return True
