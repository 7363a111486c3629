"""What every entry point shares: the ``hih_main`` decorator (known user errors as one message, a
quiet console) and the console log format. Lower layers use :mod:`hih.config`, never this module."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hih.config import config_dir

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The exception types the suite raises for bad input (docs/bad_input.md); shown as one message when
# raised by the suite's own code. The same types raised inside a dependency stay a traceback (a bug).
USER_ERROR_TYPES = (OSError, ValueError, RuntimeError, FloatingPointError)


def hih_main(config_name: str, *, uses_lightning: bool = True) -> Callable:
    """``@hydra.main`` for a suite entry point, plus: a known user error (a USER_ERROR_TYPES exception
    raised by hih code, e.g. a missing dataset folder or a checkpoint that does not fit) prints
    ``Error: <message>`` to stderr, without Hydra's traceback, and exits with status 1;
    ``HYDRA_FULL_ERROR=1`` re-raises it for the traceback. ``uses_lightning`` drops Lightning's own
    console handler, which repeats every log line that Hydra's handlers already print and file."""
    import hydra

    def decorate(task: Callable[[DictConfig], Any]) -> Callable:
        @functools.wraps(task)  # Hydra unwraps __wrapped__ to name the job after the CLI module
        def run(cfg: DictConfig) -> Any:
            if uses_lightning:
                quiet_lightning()
                # torch deprecated LeafSpec; Lightning still uses it on every fit. Nothing a user can act on.
                warnings.filterwarnings(
                    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
                )
            try:
                return task(cfg)
            except USER_ERROR_TYPES as e:
                if os.environ.get("HYDRA_FULL_ERROR") == "1" or not raised_by_suite(e):
                    raise
                report_user_error(e)
                raise SystemExit(1) from None

        return hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)(run)

    return decorate


def raised_by_suite(e: BaseException) -> bool:
    """Whether the innermost frame of ``e``'s traceback is hih code (a deliberate, worded raise)."""
    tb = e.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE_DIR)


def report_user_error(e: BaseException) -> None:
    """``Error: <message>`` on stderr, and the same line in the run's log file (if Hydra opened one)."""
    message = f"Error: {e}"
    print(message, file=sys.stderr, flush=True)
    record = logging.LogRecord("hih", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def quiet_lightning() -> None:
    """Remove the console handler that ``import lightning`` attaches to its logger: with Hydra's root
    handlers in place, it printed each Lightning message a second time (``INFO: ...``)."""
    import lightning  # noqa: F401  (the handler is added at import; import now so it can be removed)

    logger = logging.getLogger("lightning")
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
    logger.propagate = True


class ConsoleFormatter(logging.Formatter):
    """Console lines: the message alone for INFO, ``WARNING: message`` above (the file keeps timestamps)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno <= logging.INFO else f"{record.levelname}: {text}"


class VendorTipFilter(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: ... litlogger / litmodels``) from console and log file,
    and its note that a configured summary callback replaces the default (hih.callbacks.ModelSummary)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "Tip:" in msg and ("litlogger" in msg or "litmodels" in msg):
            return False
        return "Skipping setting a default `ModelSummary` callback" not in msg
