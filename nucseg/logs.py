"""Where nucseg's messages go. The library only logs (logger "nucseg.*": progress at INFO,
problems at WARNING); the CLI and the notebooks call `show_messages()` to see them: progress as
plain lines on stdout, warnings as "WARNING: ..." on stderr. Without it, Python's default shows
the warnings only."""

from __future__ import annotations

import logging
import sys


class _StandardStream(logging.Handler):
    """Writes to sys.stdout or sys.stderr as they are when the message comes (pytest's and
    Jupyter's capture replace them after the handler is made)."""

    def __init__(self, name: str, level: int, below: int | None = None):
        super().__init__(level)
        self.stream_name = name
        if below is not None:
            self.addFilter(lambda record: record.levelno < below)

    def emit(self, record: logging.LogRecord) -> None:
        stream = getattr(sys, self.stream_name)
        stream.write(self.format(record) + "\n")
        stream.flush()


def show_messages(level: int = logging.INFO) -> None:
    """Show nucseg's progress (stdout) and warnings (stderr); calling it again changes nothing."""
    logger = logging.getLogger("nucseg")
    logger.setLevel(level)
    if any(isinstance(handler, _StandardStream) for handler in logger.handlers):
        return
    progress = _StandardStream("stdout", logging.DEBUG, below=logging.WARNING)
    problems = _StandardStream("stderr", logging.WARNING)
    problems.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(progress)
    logger.addHandler(problems)
    logger.propagate = False
