"""One writer per run directory: a lock that dies with its process (issue 17, item 4).

A run directory, lone or a job of a sweep, is guarded by `fcntl.flock` on `<run dir>/.lock`, a file that holds the
process id and host of its holder. The operating system releases the lock when that process ends, however it ends
(kill -9 included), so a lock is never stale; the file itself stays behind and means nothing while unlocked.
A second writer (`sac-train resume=<dir>` while the first still trains) gets one line naming the process that
holds the directory.

Within one process the lock is reentrant: a population's launcher and each member's run lock the same directory.
flock locks belong to an open file description, so a second open() in the same process would conflict with the
first; the registry here counts the holders instead. Without torch (a leaf: the launcher imports it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

from sac_runner.errors import ConfigError

try:
    import fcntl
except ImportError:  # not on a POSIX system: no locking there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"

_held: dict[str, list] = {}  # resolved run directory -> [open file descriptor, holders]
_guard = threading.Lock()


class RunDirInUse(ConfigError):
    """Another process writes into the run directory; str() is one line naming it and the fix."""


def holder(run_dir) -> str:
    """Who holds (or last held) the run directory's lock, as its lock file says: "process <pid> on <host>"."""
    try:
        text = (Path(str(run_dir)) / LOCK_FILE).read_text().split()
    except OSError:
        text = []
    if len(text) >= 2:
        return f"process {text[0]} on {text[1]}"
    return f"process {text[0]}" if text else "another process"


def acquire(run_dir) -> None:
    """Lock `run_dir` (which must exist) for this process, or raise RunDirInUse naming the holder. Reentrant:
    each acquire() in this process needs its release()."""
    key = str(Path(str(run_dir)).expanduser().resolve())
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return
        if fcntl is None:
            _held[key] = [-1, 1]
            return
        try:
            fd = os.open(os.path.join(key, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot create the lock file {key}/{LOCK_FILE} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            who = holder(key)
            pid = who.split()[1] if who.startswith("process ") else "<pid>"
            raise RunDirInUse(
                f"{key} is in use by {who}, which is still writing into it; wait for it to finish, or stop it "
                f"first (kill -INT {pid}: it saves its checkpoint), then try again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        _held[key] = [fd, 1]


def release(run_dir) -> None:
    """Undo one acquire(); the last one unlocks the directory. Unknown directories are ignored."""
    key = str(Path(str(run_dir)).expanduser().resolve())
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        if entry[0] >= 0:
            with contextlib.suppress(OSError):
                os.close(entry[0])  # closing the descriptor releases the flock


def held() -> list[str]:
    """The run directories this process holds."""
    with _guard:
        return sorted(_held)


@contextlib.contextmanager
def locked(run_dir):
    """Hold the run directory's lock inside the block (see acquire)."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)
