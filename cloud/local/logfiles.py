"""Powertools loggers writing to a file of the current local stack.

Python loggers are process-wide and Powertools configures a service's logger only once, so a
second stack in the same process (tests start one per module) would get a handler without a
formatter, and its log lines would go to the first stack's file. This moves the service's
output to the new file, keeping Powertools' JSON formatter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


def file_logger(service: str, path: Path) -> Any:
    """A Powertools Logger for `service` whose records go to `path`."""
    from cloud.bootstrap import new_logger

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    logger = new_logger(service, handler)
    base = logging.getLogger(service)
    if handler not in base.handlers:
        previous = getattr(base, "powertools_handler", None) or (
            base.handlers[0] if base.handlers else None
        )
        if previous is not None:
            handler.setFormatter(previous.formatter)
            base.removeHandler(previous)
            previous.close()
        base.addHandler(handler)
        base.powertools_handler = handler  # type: ignore[attr-defined]
    return logger
