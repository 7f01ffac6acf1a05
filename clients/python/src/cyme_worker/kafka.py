"""The Kafka clients of one worker, all configured alike.

Every client gets the bootstrap servers, the properties of the
``--kafka-config`` file (security settings, typically), then the settings the
protocol needs, which win over the file. Values from the file are secrets and
never appear in what the worker prints.
"""

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

#: Partitions of the topics cyme itself uses (control, results, direct
#: queues) when this worker creates them on a broker that takes CreateTopics.
OWN_TOPIC_PARTITIONS = 1
#: Partitions of a queue topic this worker creates there.
QUEUE_PARTITIONS = 4

#: Largest --kafka-config file, as cyme-worker reads it.
MAX_CONFIG_BYTES = 64 * 1024

#: The queue consumers' group settings. Every member of a group must agree
#: on the assignment strategy, so these are cyme-worker's, not defaults.
GROUP_SETTINGS = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 50,
    "enable.auto.offset.store": False,
    "enable.auto.commit": True,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "roundrobin",
}


class KafkaConfigError(ValueError):
    """A --kafka-config file that cannot be used; the text names lines and
    keys, never values."""


def read_kafka_config(path: str) -> dict[str, str]:
    """librdkafka properties from `path`, read as cyme-worker reads them:
    one ``key=value`` a line; blank lines and lines whose first non-blank is
    ``#`` are skipped; the key is stripped of blanks, the value is everything
    after the first ``=``, kept as it is (a password may hold any character
    but a line break). The branch sets bootstrap.servers and client.id."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KafkaConfigError(f"--kafka-config {path}: cannot be read: {e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise KafkaConfigError(f"--kafka-config {path}: larger than 64 KiB")
    properties = {}
    for number, line in enumerate(text.split("\n"), start=1):
        content = line.lstrip(" \t")
        if not content or content.startswith("#"):
            continue
        key, equals, value = content.partition("=")
        key = key.rstrip(" \t")
        if not equals:
            raise KafkaConfigError(f"--kafka-config {path}: line {number} is not key=value")
        if not key:
            raise KafkaConfigError(f"--kafka-config {path}: line {number} has no key")
        if key in ("bootstrap.servers", "client.id"):
            raise KafkaConfigError(f"--kafka-config {path}: Kafka property '{key}' is set by cyme")
        if any(c in key for c in "\r \t") or any(c in value for c in "\r\0"):
            raise KafkaConfigError(f"--kafka-config {path}: Kafka property '{key}' is not one key=value line")
        properties[key] = value
    return properties


class KafkaProblem(Exception):
    """The broker did not do what was asked; the text says what and why."""


class Kafka:
    """Makes the clients of one worker and does what needs several of them."""

    def __init__(self, broker: str, properties: dict[str, str], logger: logging.Logger):
        self._broker = broker
        self._properties = properties
        self._logger = logger
        self._admin: AdminClient | None = None

    def config(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """A client's configuration: the base, the file's properties, then
        `settings`; the bootstrap servers are always --broker's."""
        cfg: dict[str, Any] = {
            "bootstrap.servers": self._broker,
            "client.id": "cyme",
            "socket.nagle.disable": True,
            "log.connection.close": False,
        }
        cfg.update(self._properties)
        cfg.update(settings or {})
        cfg["bootstrap.servers"] = self._broker
        cfg["logger"] = self._logger
        return cfg

    def _client(self, kind, cfg: dict[str, Any]):
        """A client of `kind`; a configuration librdkafka refuses raises
        KafkaConfigError with the file's values blanked out."""
        try:
            return kind(cfg)
        except (KafkaException, ValueError, TypeError) as e:
            message = str(e)
            for value in self._properties.values():
                if value:
                    message = message.replace(value, "***")
            raise KafkaConfigError(f"Kafka configuration refused: {message}") from None

    def producer(self) -> Producer:
        """The producer of replies and results: latency-bound, no batching delay."""
        return self._client(Producer, self.config({"linger.ms": 0}))

    def group_consumer(self, group: str) -> Consumer:
        return self._client(Consumer, self.config({"group.id": group, **GROUP_SETTINGS}))

    def check_config(self) -> None:
        """Raises KafkaConfigError when librdkafka refuses the configuration
        of a producer or a consumer, so that bad input is found at start,
        not when the first queue is added."""
        self.producer()
        self.group_consumer("cyme.config-check").close()

    def ensure_topics(self, topics: list[str], partitions: int, timeout: float) -> None:
        """Creates those of `topics` that are missing. A broker whose
        controller takes CreateTopics gets one with `partitions` partitions
        and its default replication. librdkafka's mock cluster (the embedded
        one) names no broker as its controller and never answers CreateTopics;
        it creates a topic (4 partitions) when a metadata request names it."""
        admin = self._admin_client()
        cluster = self._metadata(admin, None, timeout)
        missing = [t for t in topics if t not in cluster.topics or cluster.topics[t].error is not None]
        if not missing:
            return
        if cluster.controller_id in cluster.brokers:
            futures = admin.create_topics([NewTopic(t, partitions) for t in missing],
                                          request_timeout=timeout)
            for topic, future in futures.items():
                try:
                    future.result(timeout=timeout + 1)
                except KafkaException as e:
                    if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise KafkaProblem(f"topic {topic} cannot be created: {e.args[0].str()}") from None
            return
        for topic in missing:
            found = self._metadata(admin, topic, timeout).topics.get(topic)
            if found is None or found.error is not None:
                why = found.error.str() if found is not None else "no metadata"
                raise KafkaProblem(f"topic {topic} cannot be created: {why}")

    def control_reader(self, topic: str, fetch_wait_ms: int, timeout: float) -> Consumer:
        """A consumer of every partition of `topic` from its current end, in
        no consumer group (no join, no rebalance, no commit), so a restarted
        worker hears new commands at once and old ones are never replayed."""
        reader = self._client(Consumer, self.config({
            "group.id": "cyme.reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": fetch_wait_ms,
        }))
        try:
            found = self._metadata(reader, topic, timeout).topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                why = found.error.str() if found is not None and found.error else "no partitions"
                raise KafkaProblem(f"reading {topic}: {why}")
            positions = []
            for partition in sorted(found.partitions):
                marks = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                if marks is None:
                    raise KafkaProblem(f"reading {topic}: no watermarks of partition {partition}")
                positions.append(TopicPartition(topic, partition, marks[1]))
            reader.assign(positions)
        except (KafkaProblem, KafkaException) as e:
            reader.close()
            raise KafkaProblem(str(e)) from None
        return reader

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = self._client(AdminClient, self.config())
        return self._admin

    @staticmethod
    def _metadata(client, topic: str | None, timeout: float):
        try:
            return client.list_topics(topic=topic, timeout=timeout)
        except KafkaException as e:
            raise KafkaProblem(f"no metadata from the cluster: {e.args[0].str()}") from None
