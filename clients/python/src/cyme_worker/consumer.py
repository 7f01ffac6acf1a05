"""One queue consumed as a member of its consumer group ``cyme.<app>.<queue>``.

A thread polls the queue and hands each task to the pool. A task's offset is
stored (and committed by librdkafka's auto-commit, on revocation and on close)
only once it and every earlier task of its partition finished, so a worker
killed mid-task leaves its unfinished tasks to another member: at-least-once.

Only the consumer's own thread calls the Kafka consumer. confluent-kafka lets
one thread at a time into a consumer handle, and a runner's call waiting for
a thread that polls in a loop may wait for ever; so runners leave the offsets
to store with the consumer thread, which stores them between polls.
"""

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from .offsets import OffsetTracker
from .pool import TaskPool

#: How long one poll waits, which bounds how late a stop request is seen.
POLL_S = 0.1


class QueueConsumer:
    def __init__(self, queue: str, consumer: Consumer, pool: TaskPool,
                 run_task: Callable[[str, Message], None], logger: logging.Logger):
        self.queue = queue
        self._consumer = consumer
        self._pool = pool
        self._run_task = run_task
        self._logger = logger
        self._idle = threading.Condition()
        self._tracker = OffsetTracker()
        #: Next offset to store, by partition: what finished tasks allow.
        self._storable: dict[int, int] = {}
        self._pending = 0
        self._assigned = 0
        self._stop = threading.Event()
        self._finished = threading.Event()
        consumer.subscribe([queue], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._loop, name=f"cyme-queue-{queue}", daemon=True)
        self._thread.start()

    @property
    def assigned(self) -> int:
        """Partitions of the queue the group assigned to this consumer now."""
        return self._assigned

    @property
    def finished(self) -> bool:
        """Whether it stopped: its tasks are done and committed, it left the group."""
        return self._finished.is_set()

    def request_stop(self) -> None:
        """Stops taking tasks; those taken finish and are committed in the
        background."""
        self._stop.set()

    def stop(self) -> None:
        """Stops taking tasks, finishes those taken, commits, leaves the group."""
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        last_error = None
        while not self._stop.is_set():
            self._store_offsets()
            message = self._consumer.poll(POLL_S)
            if message is None:
                continue
            if message.error() is not None:
                # Said once, not at every poll (a new topic has no leader
                # for a while, say).
                if message.error().code() != last_error:
                    self._logger.warning("consuming %s: %s", self.queue, message.error().str())
                last_error = message.error().code()
                continue
            with self._idle:
                self._tracker.started(message.partition(), message.offset())
                self._pending += 1
            if not self._pool.submit(lambda m=message: self._run(m)):
                # The pool is stopping. The task stays "running" for the
                # tracker, so its offset is never committed: it is delivered
                # again, to this group's next member.
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
                break
        self._wait_idle()
        self._store_offsets()
        self._consumer.close()
        self._finished.set()

    def _run(self, message: Message) -> None:
        try:
            self._run_task(self.queue, message)
        finally:
            self._done(message.partition(), message.offset())

    def _done(self, partition: int, offset: int) -> None:
        with self._idle:
            following = self._tracker.finished(partition, offset)
            if following is not None:
                self._storable[partition] = following
            self._pending -= 1
            self._idle.notify_all()

    def _store_offsets(self) -> None:
        """Stores what finished tasks allow; on the consumer thread only."""
        with self._idle:
            storable, self._storable = self._storable, {}
        if not storable:
            return
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(self.queue, p, offset) for p, offset in storable.items()])
        except KafkaException as e:
            # A partition was lost (the session timed out): its tasks from
            # these offsets on will be delivered again.
            self._logger.warning("offsets of %s not stored: %s", self.queue, e.args[0].str())

    def _wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = len(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions go to another member: finish and commit what was taken
        from them first, so nothing done is delivered again."""
        self._wait_idle()
        self._store_offsets()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:  # _NO_OFFSET: nothing new to commit
                self._logger.warning("commit of %s failed: %s", self.queue, e.args[0].str())
        with self._idle:
            self._tracker.forget()
        self._assigned = 0
