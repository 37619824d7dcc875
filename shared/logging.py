"""Structured JSON logging with a redaction filter, so secrets and children's data stay out of logs."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"

# Attribute names whose values are never logged, whatever they hold.
_SECRET_NAMES = re.compile(
    r"pass(word)?|secret|token|totp|seed|recovery|otp|api_?key|authorization|cookie|"
    r"name|birth|e?mail|phone|address|payload|body|data",
    re.IGNORECASE,
)
# Values that look like secrets or personal data even when a careless caller put them in the message.
_SECRET_VALUES = [
    (re.compile(r"(?i)\b(bearer|token|password|secret|key)[=: ]+\S+"), r"\1=" + REDACTED),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), REDACTED),  # e-mail addresses
    (re.compile(r"\botpauth://\S+"), REDACTED),
    (re.compile(r"(/uitnodiging/)[A-Za-z0-9_-]+"), r"\1" + REDACTED),  # invitation links
    (re.compile(r"\b[A-Z2-7]{16,}\b"), REDACTED),  # base32 TOTP seeds
]

# Fields of a LogRecord that are not caller-supplied extras.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

# Extras that carry ids and positions, safe and wanted in every line.
SAFE_EXTRAS = frozenset(
    {"event_id", "event_type", "correlation_id", "causation_id", "topic", "partition", "offset",
     "consumer", "reason", "service", "attempt", "count", "url", "key_id", "status"}
)


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs the message and every extra that is not known to be safe."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        for name in list(vars(record)):
            if name in _RECORD_FIELDS or name in SAFE_EXTRAS:
                continue
            if _SECRET_NAMES.search(name):
                setattr(record, name, REDACTED)
            else:
                value = getattr(record, name)
                if isinstance(value, str):
                    setattr(record, name, redact_text(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name != "color_message":
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: tracebacks can quote the values being processed.
            line["exception_type"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


class _ServiceTag(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(_ServiceTag(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python logs broker chatter (and sometimes record bytes at debug) we do not want.
    logging.getLogger("kafka").setLevel(logging.WARNING)
