"""Stopping a run cleanly: SIGINT / SIGTERM are noted, and the loop checkpoints and stops after its step."""

from __future__ import annotations

import signal
import threading

# the signals that stop a run cleanly (checkpoint, then exit with status 128 + the signal number)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Python runs signal handlers in the main thread only. A StopSignals entered in another thread (a member of a
# population, training/population.py, whose scheduler holds one in the main thread) follows the main thread's:
# it receives what that one receives.
_leader: StopSignals | None = None
_followers: set[StopSignals] = set()


class StopSignals:
    """Context manager: while inside, the first SIGINT / SIGTERM is recorded in `received` (the loop reads
    it after each step); a second one raises KeyboardInterrupt at once. The previous handlers come back on
    exit. Off the main thread (where Python cannot install handlers) it follows the StopSignals the main thread
    is inside, if any: it records the signals that one receives (a second one is the main thread's to act on)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}
        self._outer: StopSignals | None = None

    @property
    def name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def _handler(self, signum, frame) -> None:
        for follower in list(_followers):
            if follower.received is None:
                follower.received = signum
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        global _leader
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
            self._outer, _leader = _leader, self
        else:
            leader = _leader
            self.received = None if leader is None else leader.received  # one that came before it entered
            _followers.add(self)
        return self

    def __exit__(self, *exc) -> None:
        global _leader
        _followers.discard(self)
        if self._previous:
            _leader = self._outer
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
