"""Progress lines for long loops: epoch, step, loss, images/s and ETA, through absl logging."""

import time

from absl import logging


def format_duration(seconds):
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Logs at most one line every ``interval`` seconds; throughput counts only the steps since start."""

    def __init__(self, total_steps, batch_size, first_step=0, interval=5.0, clock=time.monotonic):
        self.total_steps, self.batch_size, self.interval, self.clock = total_steps, batch_size, interval, clock
        self.first_step = first_step
        self.start = self.last_log = clock()

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
        now = self.clock()
        if force or now - self.last_log >= self.interval:
            self.last_log = now
            logging.info(self.line(epoch, num_epochs, step, loss))
