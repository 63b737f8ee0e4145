"""A warm pool: sandboxes started ahead of time, so that taking one costs a queue pop."""

from __future__ import annotations

import logging
import queue
import threading
import time

from rock_gym.sandbox.config import SandboxConfig
from rock_gym.sandbox.errors import SandboxError
from rock_gym.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)


class SandboxPool:
    """Keeps `size` started sandboxes of one config ready; a taken sandbox belongs to the caller and is never
    returned to the pool (close it when done), so no state crosses episodes.

    Examples:
        >>> with SandboxPool(SandboxConfig(), size=4) as pool:  # doctest: +SKIP
        ...     with pool.acquire() as sb:
        ...         sb.run("true")
    """

    def __init__(self, config: SandboxConfig, size: int = 4, starters: int = 2) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self.config = config
        self.size = size
        self._ready: queue.Queue[Sandbox] = queue.Queue()
        self._wanted = threading.Semaphore(size)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._fill, name=f"rock-gym-pool-{i}", daemon=True) for i in range(starters)
        ]
        for thread in self._threads:
            thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            if not self._wanted.acquire(timeout=0.2):
                continue
            try:
                sandbox = Sandbox(self.config).start()
            except SandboxError as exc:
                log.warning("warm pool could not start a sandbox: %s", exc)
                self._errors.append(exc)
                self._wanted.release()
                time.sleep(1.0)
                continue
            if self._stop.is_set():
                sandbox.close()
                return
            self._ready.put(sandbox)

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """Take a ready sandbox (waiting up to `timeout` s for one; default the config's startup timeout)."""
        if self._stop.is_set():
            raise SandboxError("the pool is closed")
        wait = self.config.startup_timeout if timeout is None else timeout
        try:
            sandbox = self._ready.get(timeout=wait)
        except queue.Empty:
            detail = f": last error: {self._errors[-1]}" if self._errors else ""
            raise SandboxError(f"no warm sandbox became ready within {wait}s{detail}") from None
        self._wanted.release()  # the background starters refill the slot
        return sandbox

    @property
    def ready(self) -> int:
        """How many sandboxes are waiting now."""
        return self._ready.qsize()

    def wait_full(self, timeout: float = 120.0) -> bool:
        """Block until the pool holds `size` ready sandboxes (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._ready.qsize() < self.size and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._ready.qsize() >= self.size

    def close(self) -> None:
        """Stop refilling and remove every sandbox still waiting. Idempotent."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.config.startup_timeout)
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                break

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
