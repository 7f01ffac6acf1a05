"""The worker's pool of task runners, as cyme-worker's (worker/task_pool.hpp).

It holds between `min` and `max` runner threads: it grows while tasks wait
and shrinks back after a runner idled for `keepalive`. At most `max` tasks
are in it (running or waiting) at once and `submit` blocks beyond that, which
throttles the queue consumers: a worker never takes more tasks off Kafka than
it can start, so the rest stay with the group for other members.
"""

import threading
from collections import deque
from collections.abc import Callable

#: How long a runner above `min` may idle before it leaves, as cyme-worker.
KEEPALIVE_S = 2.0


class TaskPool:
    def __init__(self, maximum: int, minimum: int, keepalive: float = KEEPALIVE_S):
        self._changed = threading.Condition()
        self._jobs: deque[Callable[[], None]] = deque()
        self._max = maximum
        self._min = minimum
        self._keepalive = keepalive
        self._threads = 0
        self._busy = 0
        self._stopping = False
        with self._changed:
            self._spawn_up_to_min()

    def submit(self, job: Callable[[], None]) -> bool:
        """Runs `job` on a runner, blocking while the pool is full. Returns
        False, without running it, once the pool is stopping."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or len(self._jobs) + self._busy < self._max)
            if self._stopping:
                return False
            self._jobs.append(job)
            if self._threads - self._busy < len(self._jobs) and self._threads < self._max:
                self._spawn()
            self._changed.notify_all()
            return True

    def set_bounds(self, maximum: int, minimum: int) -> None:
        """New bounds (1 <= minimum <= maximum), applied at once: missing
        runners start, extra idle ones leave."""
        with self._changed:
            self._max = maximum
            self._min = minimum
            if not self._stopping:
                self._spawn_up_to_min()
            self._changed.notify_all()

    @property
    def bounds(self) -> tuple[int, int]:
        """(max, min)."""
        with self._changed:
            return self._max, self._min

    @property
    def size(self) -> int:
        """Runner threads alive now."""
        with self._changed:
            return self._threads

    def stop(self) -> None:
        """Runs what was submitted, then ends every runner."""
        with self._changed:
            self._changed.wait_for(lambda: not self._jobs or self._threads == 0)
            self._stopping = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._threads == 0)

    def _spawn_up_to_min(self) -> None:
        while self._threads < self._min:
            self._spawn()

    def _spawn(self) -> None:
        self._threads += 1
        threading.Thread(target=self._run, name="cyme-runner", daemon=True).start()

    def _run(self) -> None:
        with self._changed:
            try:
                self._serve()
            finally:
                self._threads -= 1
                self._changed.notify_all()

    def _serve(self) -> None:
        """Runs jobs until this runner must leave; called and returning with
        the lock held. A job that raises ends its runner (the traceback goes
        to stderr) and the pool starts another when needed."""
        while True:
            woke = self._changed.wait_for(
                lambda: self._stopping or self._jobs or self._threads > self._max,
                timeout=self._keepalive)
            if self._jobs:
                job = self._jobs.popleft()
                self._busy += 1
                self._changed.release()
                try:
                    job()
                finally:
                    self._changed.acquire()
                    self._busy -= 1
                    self._changed.notify_all()
                continue
            # Shrink: above max at once, above min after idling for keepalive.
            if self._stopping or self._threads > self._max or (not woke and self._threads > self._min):
                return
