"""Training progress: epoch, step, loss, images/s and ETA.

On a terminal, one live line per epoch that updates in place (tqdm: it redraws the line, sizes it to the terminal
and smooths the rate) and stays as that epoch's line. Elsewhere (CI, ``| tee``, nohup) a plain log line every few
seconds, as a file wants it.
"""

import logging as std_logging
import sys
import time

from absl import logging


def format_duration(seconds):
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress of a run from ``first_step`` to ``total_steps`` (``steps_per_epoch`` each); throughput counts only
    the steps since start. ``live`` (default: stderr is a terminal) picks the live line over log lines, which
    come at most every ``interval`` seconds. Use it as a context manager, so a live line is closed on any exit."""

    def __init__(self, total_steps, batch_size, first_step=0, interval=5.0, clock=time.monotonic,
                 steps_per_epoch=None, live=None):
        self.total_steps, self.batch_size, self.interval, self.clock = total_steps, batch_size, interval, clock
        self.first_step = first_step
        self.steps_per_epoch = steps_per_epoch or total_steps
        self.live = sys.stderr.isatty() if live is None else live
        self.bar = None
        self.start = self.last_log = clock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end_epoch()

    def images_per_second(self, step):
        elapsed = self.clock() - self.start
        return (step - self.first_step) * self.batch_size / elapsed if elapsed > 0 else 0.0

    def line(self, epoch, num_epochs, step, loss):
        rate = self.images_per_second(step)
        eta = (self.total_steps - step) * self.batch_size / rate if rate > 0 else float("nan")
        eta_text = format_duration(eta) if eta == eta else "?"
        return (f"epoch {epoch}/{num_epochs} step {step}/{self.total_steps} loss {loss:.4f} "
                f"{rate:,.0f} img/s ETA {eta_text}")

    def update(self, epoch, num_epochs, step, loss, force=False):
        if self.live:
            self._update_bar(epoch, num_epochs, step, loss)
            return
        now = self.clock()
        if force or now - self.last_log >= self.interval:
            self.last_log = now
            logging.info(self.line(epoch, num_epochs, step, loss))

    def _update_bar(self, epoch, num_epochs, step, loss):
        if self.bar is None:
            from tqdm import tqdm  # only on a terminal
            done = (step - 1) % self.steps_per_epoch  # steps of this epoch before this one (a resumed run)
            self.bar = tqdm(total=self.steps_per_epoch * self.batch_size, initial=done * self.batch_size,
                            desc=f"epoch {epoch}/{num_epochs}", unit="img", unit_scale=True, dynamic_ncols=True,
                            file=sys.stderr, leave=True)
        self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self.bar.update(self.batch_size)

    def end_epoch(self):
        """Close the epoch's live line (before the epoch's summary lines are logged)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Plain(std_logging.Formatter):
    """A record as its bare message; warnings and errors say so."""

    def format(self, record):
        message = record.getMessage()
        if record.levelno >= std_logging.ERROR:
            return f"error: {message}"
        return f"warning: {message}" if record.levelno >= std_logging.WARNING else message


class _NotLogFileOnly(std_logging.Filter):
    def filter(self, record):
        return not getattr(record, "log_file_only", False)


class _AboveLiveLine:
    """A stream that prints through tqdm.write, which clears an open live line, prints, and redraws it below."""

    def write(self, text):
        from tqdm import tqdm
        if text.strip():
            tqdm.write(text.rstrip("\n"), file=sys.__stderr__)

    def flush(self):
        sys.__stderr__.flush()

    def close(self):
        pass  # sys.__stderr__ is not ours to close


# ``extra=LOG_FILE_ONLY`` on a log call keeps its record off the console (a checkpoint saved, a final result the
# command prints itself): the run's log.txt still has it.
LOG_FILE_ONLY = {"log_file_only": True}


def log_file_only(message, *args):
    logging.info(message, *args, extra=LOG_FILE_ONLY)


def plain_console():
    """Log records on stderr as plain, timestamp-free lines (absl's full records go to a run's log file, see
    cae.training_run), printed above the live line on a terminal; records logged with LOG_FILE_ONLY stay off."""
    handler = logging.get_absl_handler().python_handler
    handler.setFormatter(_Plain())
    if not any(isinstance(f, _NotLogFileOnly) for f in handler.filters):
        handler.addFilter(_NotLogFileOnly())
    if sys.stderr.isatty():
        handler.setStream(_AboveLiveLine())


def log_file(path):
    """A handler writing absl's full records (time, thread, file:line) to ``path``, for the absl logger."""
    handler = std_logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.PythonFormatter())
    return handler
