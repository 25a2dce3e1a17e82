"""What a run prints: Lightning's notes on stdout, warnings and errors on stderr, no adverts."""

import logging
import sys
import warnings

from tqdm import tqdm


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # "`Trainer.fit` stopped: `max_steps=500` reached." says what the bar at 500/500 shows,
        # and a finished run says where its picture went (nst.cli) or why it stopped early.
        return "Tip:" not in message and not message.startswith("`Trainer.fit` stopped")


class _Console(logging.StreamHandler):
    """Lightning's notes ("GPU available: ...") go to stdout, so that stderr holds only warnings
    and, when something is wrong, the one error line."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(_NoAdverts())

    def emit(self, record: logging.LogRecord) -> None:
        # Looked up per record, as sys.stdout may be swapped (tests capture it).
        self.stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        # On a line of its own: a progress bar being drawn is cleared first and drawn again
        # below it, rather than the note written onto the end of the bar's line.
        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


def quiet_lightning() -> None:
    """Set up Lightning's console output once per process (idempotent)."""
    # Advice meant for datasets; a run's loader hands over the same few indices at each step.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")  # Lightning vs newer torch
    # Lightning gives "lightning" and (depending on the root logger) its subpackages plain
    # stderr handlers; one _Console on "lightning" replaces them all.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        if name != "lightning":  # reach the one _Console on "lightning"
            logger.propagate = True
    root = logging.getLogger("lightning")
    if not any(isinstance(h, _Console) for h in root.handlers):
        root.addHandler(_Console())
