"""Known, harmless messages of the libraries the workbench uses, dropped where the workbench triggers them.

Each drop is one precise pattern on one library logger, installed by the module whose import or call
makes the library log it, with the reason beside it; every other message of that logger still shows,
so a real problem is still one line in a notebook. Python warnings are dropped the same way, with
``warnings.catch_warnings`` around the one call that raises them.
"""

from __future__ import annotations

import logging
import re


class DropMessages(logging.Filter):
    """A logger filter that drops the records whose message matches `pattern` (``re.search``)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(str(record.getMessage()))


def drop_log_messages(logger_name: str, pattern: str) -> DropMessages:
    """Drop `logger_name`'s messages matching `pattern`, once (installing it again changes nothing).

    The filter sits on the library's own logger, so it holds whichever handler shows the record and
    holds before the library is imported (the library's ``getLogger`` returns the same logger).
    """
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, DropMessages) and existing.pattern.pattern == pattern:
            return existing
    drop = DropMessages(pattern)
    logger.addFilter(drop)
    return drop
