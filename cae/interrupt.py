"""Ctrl-C and SIGTERM stop training between two steps, never in the middle of a session run or a checkpoint write.

While ``deferred_signals()`` is active, SIGINT and SIGTERM are only recorded; the training loop asks after each
step whether one arrived, saves a checkpoint and raises ``Interrupted``. SIGKILL cannot be caught: what protects the
work then is that checkpoints and the checkpoint state file are written atomically (see tests/test_crash_resume.py).
"""

import contextlib
import signal
import threading


class Interrupted(Exception):
    """Training stopped on a signal after ``step`` steps, a checkpoint of that step saved."""

    def __init__(self, signum, step):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}, checkpoint saved; "
                         f"run the same command again to resume")


@contextlib.contextmanager
def deferred_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """Yield a function returning the first signal received so far (or None), restoring the handlers after.

    Outside the main thread Python cannot install handlers; the function then always returns None.
    """
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signums}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
