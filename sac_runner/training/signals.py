"""Stopping a run cleanly: SIGINT / SIGTERM are noted, and the loop checkpoints and stops after its step."""

from __future__ import annotations

import signal
import threading

# the signals that stop a run cleanly (checkpoint, then exit with status 128 + the signal number)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager: while inside, the first SIGINT / SIGTERM is recorded in `received` (the loop reads
    it after each step); a second one raises KeyboardInterrupt at once. The previous handlers come back on
    exit. Off the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    @property
    def name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def _handler(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
