"""A small terminal progress bar for long CLI work (sync, imports, recomputes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Redraws one line per stage on a TTY; prints a line per stage change otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.stage = ""
        self._last = 0.0
        self.tty = stream.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            if self.stage and self.tty:
                self.stream.write("\n")
            self.stage = stage
            self._last = 0.0
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < 0.1:
            return
        self._last = now
        if not self.tty and not final:
            return
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        line = f"{stage:<10} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the current line."""
        if self.stage and self.tty:
            self.stream.write("\n")
            self.stream.flush()
