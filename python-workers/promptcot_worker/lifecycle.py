"""Process plumbing: a clean stdout for the READY line, stop signals, and dying with the parent."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from typing import Callable, TextIO

log = logging.getLogger("promptcot_worker.lifecycle")

READY_PREFIX = "PROMPTCOT_READY"
PR_SET_PDEATHSIG = 1


def reserve_stdout() -> TextIO:
    """Keep the real stdout for the READY line only; everything else written to fd 1 lands on stderr.

    Libraries (and C extensions) sometimes print to stdout, which would corrupt the controller's protocol.
    """
    sys.stdout.flush()
    ready_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(ready_fd, "w", buffering=1)


def announce_ready(stream: TextIO, port: int, worker_id: str) -> None:
    payload = json.dumps({"port": port, "pid": os.getpid(), "worker_id": worker_id})
    stream.write(f"{READY_PREFIX} {payload}\n")
    stream.flush()


def _exit_now(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def guard_startup(parent: int) -> None:
    """Until the server is up, SIGTERM/SIGINT and the parent's death mean: exit now."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)
    _set_pdeathsig()
    if os.getppid() != parent:
        raise SystemExit(0)


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError as err:  # not fatal: the watchdog thread still works
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", err)


def die_with_parent(parent: int, on_orphaned: Callable[[], None], interval_s: float = 0.5) -> None:
    """Stop when ``parent`` (read as early as possible at startup) dies.

    Kernel signal on Linux, plus a polling thread as a fallback for other platforms and for the
    window before prctl took effect.
    """
    _set_pdeathsig()
    if os.getppid() != parent:
        # The parent died before prctl took effect.
        on_orphaned()
        return

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                log.warning("parent %d is gone; stopping", parent)
                on_orphaned()
                return

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def install_stop_signals(on_stop: Callable[[int], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: on_stop(signum))
