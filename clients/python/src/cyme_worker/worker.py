"""A running worker instance: the control loop, its queue consumers, its pool
of task runners and the results it publishes (docs/PROTOCOL.md)."""

import logging
import os
import signal
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from .consumer import QueueConsumer
from .handlers import Registry
from .kafka import OWN_TOPIC_PARTITIONS, QUEUE_PARTITIONS, Kafka, KafkaConfigError, KafkaProblem
from .names import direct_queue
from .options import Options
from .pool import TaskPool
from .wire import MAX_MESSAGE, Command, Invalid, InvalidTask, Result, decode_command, decode_task, encode_reply

CONTROL_TOPIC = "cyme.control"
RESULTS_TOPIC = "cyme.results"
#: How long a worker waits for its broker before it gives up with exit 1.
CONNECT_DEADLINE_S = 30.0
#: How long one control poll waits, which bounds how late a signal is seen.
CONTROL_POLL_S = 0.05
#: How long topic creation for add_consumer may take.
TOPIC_TIMEOUT_S = 5.0

EXIT_OK, EXIT_CANNOT_START, EXIT_USAGE = 0, 1, 2


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Worker:
    """Runs one instance until it is told to stop: by a `shutdown` command,
    SIGTERM, SIGINT or `stop()`."""

    def __init__(self, options: Options, registry: Registry, kafka_properties: dict[str, str],
                 logger: logging.Logger):
        self._options = options
        self._registry = registry
        self._logger = logger
        self._kafka = Kafka(options.broker, kafka_properties, logger)
        self._stopping = threading.Event()
        self._started = time.monotonic()
        self._counts_lock = threading.Lock()
        self._done = 0
        self._failed = 0
        self._active: list[QueueConsumer] = []
        self._retiring: list[QueueConsumer] = []
        self._producer = None
        self._pool: TaskPool | None = None

    def stop(self) -> None:
        """Asks the worker to stop gracefully, as SIGTERM does."""
        self._stopping.set()

    def run(self) -> int:
        """Runs the instance. Returns 0 after a graceful stop, 1 when the
        broker could not be reached, 2 when the Kafka configuration is refused.
        Installs SIGTERM and SIGINT handlers when called on the main thread."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self._stopping.set())
        try:
            self._kafka.check_config()
            self._producer = self._kafka.producer()
        except KafkaConfigError as e:
            self._logger.error("%s", e)
            return EXIT_USAGE
        reader = self._connect()
        if reader is None:
            return EXIT_OK if self._stopping.is_set() else EXIT_CANNOT_START
        try:
            return self._serve(reader)
        finally:
            reader.close()

    def _connect(self):
        """The control reader, once the broker serves the control and results
        topics; None when it did not within the deadline or a stop came."""
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        last_problem = None
        while True:
            timeout = max(0.5, min(5.0, deadline - time.monotonic()))
            try:
                self._kafka.ensure_topics([CONTROL_TOPIC, RESULTS_TOPIC], OWN_TOPIC_PARTITIONS, timeout)
                return self._kafka.control_reader(CONTROL_TOPIC, self._options.control_fetch_wait_ms, timeout)
            except KafkaProblem as e:
                problem = str(e)
            if self._stopping.is_set():
                self._logger.info("stopped before the broker answered")
                return None
            if time.monotonic() >= deadline:
                self._logger.error("cannot reach broker %s: %s", self._options.broker, problem)
                return None
            # A broker just started, or a topic just created, may not serve
            # yet (no leader elected): retry until the deadline.
            if problem != last_problem:
                self._logger.info("waiting for broker %s: %s", self._options.broker, problem)
            last_problem = problem
            self._stopping.wait(0.2)

    def _serve(self, reader) -> int:
        self._pool = TaskPool(self._options.max, self._options.min)
        dq = direct_queue(self._options.name)
        if problem := self._add_consumer(dq, OWN_TOPIC_PARTITIONS):
            self._logger.error("cannot consume %s: %s", dq, problem)
            self._pool.stop()
            return EXIT_CANNOT_START
        for queue in self._options.queues:
            if problem := self._add_consumer(queue, QUEUE_PARTITIONS):
                self._logger.error("cannot consume %s: %s", queue, problem)
        self._logger.info("ready, pid %d", os.getpid())
        while not self._stopping.is_set():
            self._reap()
            self._producer.poll(0)
            message = reader.poll(CONTROL_POLL_S)
            if message is None or message.error() is not None:
                continue
            try:
                command = decode_command(message.value() or b"")
            except Invalid as e:
                self._logger.warning("dropped control message at %s: %s", _where(message), e)
                continue
            if self._options.name not in command.to:
                continue
            if self._answer(command):
                self._logger.info("shutdown requested")
                break
        else:
            self._logger.info("terminated by signal")
        # Graceful: stop taking tasks, finish running ones, commit, leave.
        for consumer in self._active:
            consumer.request_stop()
        for consumer in self._active + self._retiring:
            consumer.stop()
        self._pool.stop()
        self._producer.flush(5)
        self._logger.info("stopped after %d done, %d failed", self._done, self._failed)
        return EXIT_OK

    # -- control ---------------------------------------------------------------

    def _answer(self, command: Command) -> bool:
        """Acts on `command` and replies to it; True when it was `shutdown`."""
        result, error = self._act(command)
        reply = encode_reply(command, self._options.name, result, error)
        if problem := self._publish(command.reply_to, command.id, reply):
            self._logger.warning("reply to %s not sent: %s", command.id, problem)
        return command.op == "shutdown"

    def _act(self, command: Command) -> tuple[dict | None, str | None]:
        """(result, None) or (None, error) for a command addressed to us."""
        match command.op:
            case "ping":
                return {"pong": True}, None
            case "stats":
                return self._stats(), None
            case "active_queues":
                return {"queues": self._queues()}, None
            case "add_consumer":
                if problem := self._add_consumer(command.queue, QUEUE_PARTITIONS):
                    return None, problem
                return {"queues": self._queues()}, None
            case "cancel_consumer":
                if command.queue == direct_queue(self._options.name):
                    return None, "the direct queue is never cancelled"
                self._cancel_consumer(command.queue)
                return {"queues": self._queues()}, None
            case "autoscale":
                self._pool.set_bounds(command.max, command.min)
                self._logger.info("autoscale %d,%d", command.max, command.min)
                return {"max": command.max, "min": command.min}, None
            case "shutdown":
                return {}, None
        raise AssertionError(f"op {command.op!r} passed decoding")

    def _stats(self) -> dict[str, Any]:
        maximum, minimum = self._pool.bounds
        return {
            "pid": os.getpid(),
            "uptime_ms": int((time.monotonic() - self._started) * 1000),
            "queues": self._queues(),
            "autoscale": {"max": maximum, "min": minimum, "current": self._pool.size},
            "tasks": {"done": self._done, "failed": self._failed},
            "partitions": {c.queue: c.assigned for c in self._active},
        }

    def _queues(self) -> list[str]:
        return [c.queue for c in self._active]

    def _add_consumer(self, queue: str, partitions: int) -> str | None:
        """Starts consuming `queue`, creating its topic if missing; a queue
        already consumed is left as it is. Returns why it could not."""
        if queue in self._queues():
            return None
        try:
            self._kafka.ensure_topics([queue], partitions, TOPIC_TIMEOUT_S)
            consumer = self._kafka.group_consumer(f"cyme.{self._options.app}.{queue}")
        except (KafkaProblem, KafkaConfigError) as e:
            return str(e)
        self._active.append(QueueConsumer(queue, consumer, self._pool, self._run_task, self._logger))
        self._logger.info("consuming from %s", queue)
        return None

    def _cancel_consumer(self, queue: str) -> None:
        """Stops consuming `queue` in the background: tasks already taken
        finish and are committed while the worker keeps answering. A queue
        not consumed is no error."""
        for consumer in self._active:
            if consumer.queue == queue:
                consumer.request_stop()
                self._active.remove(consumer)
                self._retiring.append(consumer)
                self._logger.info("cancelled consuming from %s", queue)
                return

    def _reap(self) -> None:
        """Joins consumers that finished retiring."""
        for consumer in [c for c in self._retiring if c.finished]:
            consumer.stop()
            self._retiring.remove(consumer)

    # -- tasks -----------------------------------------------------------------

    def _run_task(self, queue: str, message: Message) -> None:
        """Runs one task on a runner thread and publishes its result."""
        started = _now_ms()
        try:
            task = decode_task(message.value() or b"")
        except InvalidTask as e:
            if e.task_id is None:
                self._count(failed=True)
                self._logger.warning("dropped task at %s: %s", _where(message), e)
                return
            self._logger.warning("invalid task %s at %s: %s", e.task_id, _where(message), e)
            self._publish_result(Result(e.task_id, self._options.name, queue, started, _now_ms(),
                                        error=f"invalid task: {e}"))
            return
        result = Result(task.id, self._options.name, queue, started, 0)
        handler = self._registry.get(task.handler)
        if handler is None:
            result.error = f"unknown handler '{task.handler[:64]}'"
        else:
            try:
                result.result = handler(task.args)
            # A handler never takes the worker down, whatever it raises
            # (SystemExit included): its task fails and the worker goes on.
            except BaseException as e:  # noqa: BLE001
                result.error = str(e) or type(e).__name__
        result.finished_at_ms = _now_ms()
        self._publish_result(result)

    def _publish_result(self, result: Result) -> None:
        """Publishes `result`, or a FAILURE saying why it cannot be, and
        counts the task by the state published."""
        try:
            payload = result.encode()
        except (ValueError, TypeError) as e:
            result.result, result.error = None, f"the result is not JSON: {e}"
            payload = result.encode()
        if len(payload) > MAX_MESSAGE:
            # Receivers drop messages over the limit: say so instead.
            result.result, result.error = None, f"result of {len(payload)} bytes exceeds the limit of {MAX_MESSAGE}"
            payload = result.encode()
        self._count(failed=result.error is not None)
        if problem := self._publish(RESULTS_TOPIC, result.id, payload):
            self._logger.warning("result of %s not published: %s", result.id, problem)

    def _count(self, *, failed: bool) -> None:
        with self._counts_lock:
            if failed:
                self._failed += 1
            else:
                self._done += 1

    def _publish(self, topic: str, key: str, value: bytes) -> str | None:
        """Queues a message; returns why it could not be. A full local queue
        is waited out for up to five seconds, serving deliveries meanwhile."""
        for _ in range(50):
            try:
                self._producer.produce(topic, value=value, key=key.encode("utf-8"), on_delivery=self._delivered)
                return None
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as e:
                return e.args[0].str()
        return "the producer's queue stayed full"

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._logger.warning("message to %s (key %s) not delivered: %s",
                                 message.topic(), (message.key() or b"").decode("utf-8", "replace"), error.str())


def _where(message: Message) -> str:
    return f"{message.topic()}/{message.partition()}@{message.offset()}"
