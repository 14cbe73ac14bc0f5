"""The end of a log file, and what is appended to it (``stellara logs``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

BLOCK = 64 * 1024


def last_lines(path: Path, lines: int) -> tuple[bytes, int]:
    """The last ``lines`` lines of ``path`` (all with 0) and the size they end at."""
    with open(path, "rb") as log:
        size = log.seek(0, os.SEEK_END)
        if lines <= 0:
            log.seek(0)
            return log.read(size), size
        start = size
        data = b""
        # one more newline than lines: the file normally ends with one
        while start > 0 and data.count(b"\n") <= lines:
            step = min(BLOCK, start)
            start -= step
            log.seek(start)
            data = log.read(step) + data
        kept = data.splitlines(keepends=True)[-lines:]
        return b"".join(kept), size


def follow(
    path: Path,
    out: BinaryIO,
    *,
    offset: int,
    keep_going: Callable[[], bool] = lambda: True,
    interval: float = 0.25,
) -> None:
    """Copy what is appended to ``path`` after ``offset`` to ``out`` until ``keep_going`` is false.

    A file that shrinks (truncated, or deleted and written anew) is read again from its start.
    """
    position = offset
    while keep_going():
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < position:
            position = 0
        if size > position:
            with open(path, "rb") as log:
                log.seek(position)
                chunk = log.read(size - position)
            position += len(chunk)
            out.write(chunk)
            out.flush()
            continue
        time.sleep(interval)
