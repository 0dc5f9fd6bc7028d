"""The service's own log: readable text by default, one JSON object per line for machines."""

from __future__ import annotations

import json
import logging
import sys
import time

#: Context a log line may carry (logged with extra={...}); JSON lines have them as fields.
FIELDS = ("preparation_id", "server", "step", "state", "reason", "driver", "attempt", "duration_s", "method",
          "peer", "replica", "owner", "exit_code")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None and value != "":
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _ClientWentAway(logging.Filter):
    """grpc logs an error with a traceback when a client closes a stream while a message is being
    written to it (StreamLogs followers that stop following): an everyday event, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ExecuteBatchError" not in record.getMessage()


def configure(level: str, fmt: str) -> None:
    """Set up the root logger once, on standard error."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # asyncssh logs every command line at INFO: too much for an operator, and not its business.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    handler.addFilter(_ClientWentAway())
