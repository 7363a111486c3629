"""Progress that a log file can show: plain lines with counts, rate and ETA, plus a Rich bar on a terminal.

Long work runs where stdout is a file (SLURM, multiruns, CI); a progress bar writes nothing useful
there. :func:`emit` routes one line: always to the run's log files (the ``logging.FileHandler`` s,
e.g. Hydra's ``<task>.log``), and to the console only when the console is not a terminal (where a bar
already shows it). :func:`track` wraps an iterable: a line every ``every_n`` items or ``every_s``
seconds, with ETA, and a Rich bar when the console is a terminal.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

__all__ = ["console_is_terminal", "emit", "format_duration", "track"]

LOG = logging.getLogger("hih.progress")
T = TypeVar("T")


def console_is_terminal() -> bool:
    """Whether stdout shows a live display, as Rich decides: an interactive terminal (or one forced with
    ``FORCE_COLOR`` / ``TTY_COMPATIBLE``, not ``TERM=dumb``), or Jupyter."""
    from rich.console import Console

    console = Console(file=sys.stdout)
    return bool(console.is_interactive or console.is_jupyter)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def emit(message: str, console: bool | None = None, logger: logging.Logger = LOG) -> None:
    """One progress line to every log file, and to the console when ``console`` (default: when stdout
    is not a terminal). Without a console handler (outside a Hydra app) the console line is printed."""
    if console is None:
        console = not console_is_terminal()
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, None, None)
    shown = False
    lg: logging.Logger | None = logger
    enabled = logger.isEnabledFor(logging.INFO)
    while lg is not None and enabled:
        for handler in lg.handlers:
            if record.levelno < handler.level:
                continue
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_console and not console:
                continue
            handler.handle(record)
            # A handler left pointing at an earlier stdout (a replaced sys.stdout) does not count as shown.
            shown |= is_console and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)
        lg = lg.parent if lg.propagate else None
    if console and not shown:
        print(message, flush=True)


class _Lines:
    """Decides when a line is due and writes it."""

    def __init__(self, desc: str, total: int | None, unit: str, every_n: int | None, every_s: float, console: bool):
        self.desc, self.total, self.unit, self.console = desc, total, unit, console
        self.every_n = every_n or (max(1, math.ceil(total / 10)) if total else 100)
        self.every_s = every_s
        self.t0 = self.last_t = time.perf_counter()
        self.last_n = 0

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and done - self.last_n < self.every_n and now - self.last_t < self.every_s:
            return
        self.last_n, self.last_t = done, now
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else float("nan")
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        if final:
            tail = f"done in {format_duration(elapsed)}"
        else:
            eta = (self.total - done) / rate if self.total and rate > 0 else float("nan")
            tail = f"elapsed {format_duration(elapsed)}  eta {format_duration(eta)}"
        emit(f"{self.desc}: {done}{of} {self.unit}{pct}  {rate:.3g} {self.unit}/s  {tail}", console=self.console)


def track(
    items: Iterable[T],
    desc: str,
    total: int | None = None,
    unit: str = "items",
    every_n: int | None = None,
    every_s: float = 30.0,
    sizes: Iterable[int] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` with progress: lines (every ``every_n`` units, default a tenth of the total, or
    every ``every_s`` seconds, and a last one with the time taken) and, on a terminal, a Rich bar.

    ``sizes``: units per item (e.g. images per batch); default one per item.
    """
    if total is None and isinstance(items, Sized):
        total = len(items) if sizes is None else None
    terminal = console_is_terminal()
    lines = _Lines(desc, total, unit, every_n, every_s, console=not terminal)
    bar = task = None
    if terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        task = bar.add_task(desc, total=total)
        bar.start()
    done = 0
    size_iter = iter(sizes) if sizes is not None else None
    try:
        for item in items:
            yield item
            step = next(size_iter) if size_iter is not None else 1
            done += step
            if bar is not None:
                bar.advance(task, step)
            lines.update(done)
    finally:
        if bar is not None:
            bar.stop()
    lines.update(done, final=True)
