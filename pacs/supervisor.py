"""Child processes of ``pacs serve`` (DICOM and AI workers), restarted when they die."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("pacs")

_RESTART_DELAY = 1.0


class Supervisor:
    """Starts named worker processes (spawned) and restarts any that dies until stopped."""

    def __init__(self, check_every: float = 1.0) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._children: dict[str, tuple[Callable[..., Any], tuple[Any, ...], BaseProcess]] = {}
        self._stop = threading.Event()
        self._check_every = check_every
        self._thread: threading.Thread | None = None

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        """Start one child process under ``name``."""
        process = self._context.Process(target=target, args=args, name=name, daemon=True)
        process.start()
        self._children[name] = (target, args, process)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
            self._thread.start()

    def pid(self, name: str) -> int | None:
        """The process id of a child."""
        child = self._children.get(name)
        return child[2].pid if child else None

    def _watch(self) -> None:
        while not self._stop.wait(self._check_every):
            for name, (target, args, process) in list(self._children.items()):
                if process.is_alive() or self._stop.is_set():
                    continue
                log.error(
                    "%s (pid %s) exited with %s; restarting it", name, process.pid, process.exitcode
                )
                time.sleep(_RESTART_DELAY)
                if not self._stop.is_set():
                    self.start(name, target, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate every child and wait for it."""
        self._stop.set()
        processes = [process for _, _, process in self._children.values()]
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=timeout)
