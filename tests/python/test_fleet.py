"""The fleet tour with a Python worker beside cyme-worker.

Starts a real cyme-branch and drives it over HTTP: one app,
one shared queue, a cyme-worker instance and a Python instance
(``python -m cyme_worker``) on it. The tests run in order, each on the
state the previous left, and stop at the first failure. Every wait is a
condition with a deadline.

    python test_fleet.py BUILD_DIR      (tests/python/run.sh sets it up)

The branch uses the embedded Kafka; or the broker CYME_TEST_KAFKA names
(HOST:PORT, e.g. one deploy/kafka/kafka.sh runs); or, when
CYME_TEST_KAFKA_SASL, CYME_TEST_KAFKA_SASL_USER and
CYME_TEST_KAFKA_SASL_PASSWORD_FILE name one (deploy/test.sh starts it), that
broker's SASL_PLAINTEXT listener, so that the workers reach Kafka only
through the credentials the branch hands them in --kafka-config.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
TASKS_MODULE = HERE / "fleet_tasks.py"
APP, QUEUE = "tour", "shared"
CW, PY = "cw", "py"
#: Most waits: a verification round is 2 s, a group rebalance on the
#: embedded cluster takes up to the session timeout (6 s) and more.
DEADLINE_S = 60.0
BUILD_DIR: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(what: str, probe, timeout: float = DEADLINE_S):
    """The first truthy value of `probe()`, polled until `timeout`; fails
    the test naming `what` and the last value seen otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(0.1)


@dataclass
class Broker:
    """The Kafka the branch uses ("embedded" or HOST:PORT) and the client
    properties that reach it."""

    kafka: str = "embedded"
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def password(self) -> str | None:
        return self.properties.get("sasl.password")

    @classmethod
    def from_environment(cls) -> "Broker":
        if sasl := os.environ.get("CYME_TEST_KAFKA_SASL"):
            password = Path(os.environ["CYME_TEST_KAFKA_SASL_PASSWORD_FILE"]).read_text().strip()
            return cls(sasl, {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                              "sasl.username": os.environ["CYME_TEST_KAFKA_SASL_USER"],
                              "sasl.password": password})
        return cls(os.environ.get("CYME_TEST_KAFKA") or "embedded")


class Branch:
    """A cyme-branch process on a root of its own, on `broker`."""

    def __init__(self, build: Path, venv_bin: Path, broker: Broker):
        self.root = Path(tempfile.mkdtemp(prefix="cyme-python-fleet-"))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(self.root / "branch.log", "wb")
        # Any property makes the branch hand its workers --kafka-config.
        command = [str(build / "cyme-branch"), "--root", str(self.root), "--http", self.url[len("http://"):],
                   "--kafka", broker.kafka, "--interval", "2", "--allow-program", str(venv_bin),
                   "--kafka-property", "socket.keepalive.enable=true"]
        if broker.properties:
            # Secrets only in a config file the others cannot read.
            config = self.root / "branch.toml"
            config.touch(mode=0o600)
            config.write_text("[kafka]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                                    for key, value in broker.properties.items()))
            command += ["--config", str(config)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        wait_for("the branch's HTTP API", lambda: self._answers(), timeout=30)
        self.bootstrap = (broker.kafka if broker.kafka != "embedded"
                          else (self.root / "kafka" / "bootstrap").read_text().strip())

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"cyme-branch exited with {self.process.returncode}: {self.log_text()}")
        try:
            return self.call("GET", "/")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        """(status, JSON answer) of one HTTP request."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method: str, path: str, body=None):
        status, answer = self.call(method, path, body)
        if status >= 300:
            raise AssertionError(f"{method} {path} answered {status}: {answer}")
        return answer

    def instance(self, name: str) -> dict:
        return self.ok("GET", f"/{APP}/instances/{name}/")

    def stats(self, name: str) -> dict | None:
        status, answer = self.call("GET", f"/{APP}/instances/{name}/stats/")
        return answer if status == 200 else None

    def worker_log(self, name: str) -> str:
        return (self.root / "instances" / name / "worker.log").read_text(errors="replace")

    def log_text(self) -> str:
        return (self.root / "branch.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM (which stops its instances and the embedded cluster), then
        SIGKILL and the embedded cluster by its pid file if it hangs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pid_file = self.root / "kafka" / "kafka.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        self.log.close()


class Control:
    """Publishes raw messages on cyme.control and reads the replies sent to
    a reply topic of its own, as a branch would."""

    REPLY_TOPIC = "cyme.reply.python-fleet-test"

    def __init__(self, bootstrap: str, properties: dict[str, str]):
        quiet = {"bootstrap.servers": bootstrap, "log.connection.close": False, **properties}
        self.producer = Producer({**quiet, "linger.ms": 0})
        self.reader = Consumer({**quiet, "group.id": "cyme.reader",
                                "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        # A producer's metadata request naming a topic creates it, on the
        # embedded cluster and on a broker that creates topics on demand; a
        # new topic serves once its partitions have leaders.
        self.reader.assign(wait_for("the reply topic", self._ends, timeout=30))

    def _ends(self) -> list[TopicPartition] | None:
        """Every partition of the reply topic at its end, or None while the
        topic is not served yet."""
        topic = self.REPLY_TOPIC
        try:
            found = self.producer.list_topics(topic=topic, timeout=5).topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                return None
            return [TopicPartition(topic, p, self.reader.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1])
                    for p in found.partitions]
        except KafkaException:
            return None

    def publish(self, value: bytes, key: str = "test") -> None:
        self.producer.produce("cyme.control", key=key.encode(), value=value)
        assert self.producer.flush(10) == 0, "the control message was not delivered"

    def command(self, op: str, to: list[str], args: dict | None = None, timeout: float = 10) -> dict:
        """The replies to one command, by instance; fails unless all of `to` answered."""
        command_id = f"test-{uuid.uuid4().hex}"
        self.publish(json.dumps({"v": 1, "id": command_id, "op": op, "reply_to": self.REPLY_TOPIC,
                                 "to": to, "args": args or {}}).encode(), key=command_id)
        replies = {}
        deadline = time.monotonic() + timeout
        while set(replies) != set(to) and time.monotonic() < deadline:
            message = self.reader.poll(0.1)
            if message is None or message.error() is not None:
                continue
            reply = json.loads(message.value())
            if reply.get("id") == command_id:
                if reply["from"] in replies:
                    raise AssertionError(f"{reply['from']} answered {op} twice")
                replies[reply["from"]] = reply
        if set(replies) != set(to):
            raise AssertionError(f"{op}: only {sorted(replies)} of {to} answered within {timeout} s")
        return replies

    def close(self) -> None:
        """Closes both clients, so neither reconnects to a stopped cluster."""
        self.reader.close()
        self.producer.flush(5)
        del self.producer


def shape(value):
    """The structure of a JSON value: keys and types, not contents (an
    instance's direct queue, a key of stats' partitions, as "dq.*")."""
    if isinstance(value, dict):
        return {"dq.*" if key.startswith("dq.") else key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


class FleetTour(unittest.TestCase):
    branch: Branch
    control: Control

    @classmethod
    def setUpClass(cls):
        cls.venv_bin = Path(sys.executable).parent
        cls.broker = Broker.from_environment()
        cls.branch = Branch(BUILD_DIR, cls.venv_bin, cls.broker)
        cls.control = Control(cls.branch.bootstrap, cls.broker.properties)

    @classmethod
    def tearDownClass(cls):
        cls.control.close()
        cls.branch.stop()

    # -- helpers ----------------------------------------------------------------

    def python_instance(self) -> dict:
        """The model of the Python instance: a worker whose program is this
        venv's interpreter."""
        return {"queues": [QUEUE], "max_concurrency": 2, "kind": "worker",
                "program": str(self.venv_bin / "python"),
                "args": ["-m", "cyme_worker", "--tasks", str(TASKS_MODULE)],
                "env": {"FLEET_TEST_MARK": "from-the-model"}}

    def running(self, name: str, *, other_than: int | None = None) -> dict | None:
        instance = self.branch.instance(name)
        if instance["state"] != "running" or not instance.get("pid") or instance["pid"] == other_than:
            return None
        return instance

    def send(self, queue: str, handler: str, args=None) -> str:
        answer = self.branch.ok("POST", f"/{APP}/queue/{queue}/", {"handler": handler, "args": args})
        return answer["id"]

    def result(self, task_id: str) -> dict:
        status, answer = self.branch.call("GET", f"/{APP}/query/{task_id}/wait/?timeout=30")
        self.assertEqual(status, 200, f"task {task_id} has no result: {answer}")
        return answer

    def dropped_control_lines(self) -> int:
        return self.branch.worker_log(PY).count("dropped control message")

    # -- the tour ---------------------------------------------------------------

    def test_01_both_instances_run(self):
        self.branch.ok("PUT", f"/{APP}/", {})
        self.branch.ok("PUT", f"/{APP}/queues/{QUEUE}/", {})
        self.branch.ok("PUT", f"/{APP}/instances/{CW}/", {"queues": [QUEUE], "max_concurrency": 2})
        self.branch.ok("PUT", f"/{APP}/instances/{PY}/", self.python_instance())
        for name in (CW, PY):
            instance = wait_for(f"{name} running", lambda n=name: self.running(n))
            self.assertTrue(alive(instance["pid"]))
            argv = Path(f"/proc/{instance['pid']}/cmdline").read_bytes().split(b"\0")
            properties = self.branch.root / "instances" / name / "kafka.properties"
            self.assertIn(str(properties).encode(), argv, "the worker was given --kafka-config")
            self.assertEqual(properties.stat().st_mode & 0o777, 0o600)
            if self.broker.password:
                self.assertNotIn(self.broker.password.encode(), b" ".join(argv))
            wait_for(f"{name} consuming dq.{name} and {QUEUE}",
                     lambda n=name: self.branch.instance(n)["consuming_from"] == [f"dq.{n}", QUEUE])

    def test_02_both_answer_the_protocol_alike(self):
        both = [CW, PY]
        queues = {"queues": [f"dq.{PY}", QUEUE]}
        for op, args, expected in (("ping", None, {"pong": True}),
                                   ("stats", None, None),
                                   ("active_queues", None, queues),
                                   ("cancel_consumer", {"queue": "never-consumed"}, queues),
                                   ("autoscale", {"max": 2, "min": 1}, {"max": 2, "min": 1})):
            replies = self.control.command(op, both, args)
            self.assertEqual(shape(replies[PY]), shape(replies[CW]), op)
            self.assertTrue(replies[PY]["ok"], replies[PY])
            if expected is not None:
                self.assertEqual(replies[PY]["result"], expected, op)
        stats = self.control.command("stats", [PY])[PY]["result"]
        self.assertEqual(stats["pid"], self.branch.instance(PY)["pid"])
        self.assertEqual(stats["queues"], [f"dq.{PY}", QUEUE])
        refused = self.control.command("cancel_consumer", both, {"queue": f"dq.{PY}"})
        self.assertEqual(refused[PY], {"v": 1, "id": refused[PY]["id"], "op": "cancel_consumer", "from": PY,
                                       "ok": False, "error": "the direct queue is never cancelled"})
        self.assertTrue(refused[CW]["ok"], "cw does not consume dq.py: cancelling it is a no-op")

    def test_03_consumer_add_and_cancel(self):
        path = f"/{APP}/instances/{PY}/queues/extra/"
        self.branch.ok("PUT", path, {})
        wait_for("py consuming extra", lambda: "extra" in self.branch.instance(PY)["consuming_from"])
        stats = wait_for("py's stats with extra", lambda: (s := self.branch.stats(PY)) and "extra" in s["queues"] and s)
        self.assertIn("extra", stats["partitions"])
        self.branch.ok("DELETE", path)
        wait_for("py no longer consuming extra", lambda: "extra" not in self.branch.instance(PY)["consuming_from"])
        stats = wait_for("py's stats without extra", lambda: (s := self.branch.stats(PY)) and s)
        self.assertEqual(stats["queues"], [f"dq.{PY}", QUEUE])
        self.assertNotIn("extra", stats["partitions"])

    def test_04_autoscale(self):
        path = f"/{APP}/instances/{PY}/autoscale/"
        self.branch.ok("POST", path, {"max": 4, "min": 2})
        stats = wait_for("py at 4,2", lambda: (s := self.branch.stats(PY)) and s["autoscale"]["max"] == 4 and s)
        self.assertEqual(stats["autoscale"]["min"], 2)
        self.assertGreaterEqual(stats["autoscale"]["current"], 2, "min runners start at once")
        # One bound: the other stays as the model has it.
        self.branch.ok("POST", path, {"max": 5})
        stats = wait_for("py at 5,2", lambda: (s := self.branch.stats(PY)) and s["autoscale"]["max"] == 5 and s)
        self.assertEqual(stats["autoscale"]["min"], 2)
        self.assertEqual(self.branch.ok("GET", path), {"max": 5, "min": 2})

    def test_05_shared_queue_tasks_go_to_both(self):
        for name in (CW, PY):
            wait_for(f"{name} assigned partitions of {QUEUE}",
                     lambda n=name: (s := self.branch.stats(n)) and s["partitions"].get(QUEUE, 0) > 0)
        sent = {self.send(QUEUE, "echo", {"n": n}): n for n in range(40)}
        instances = set()
        for task_id, n in sent.items():
            result = self.result(task_id)
            self.assertEqual((result["state"], result["result"]), ("SUCCESS", {"n": n}), result)
            instances.add(result["instance"])
        self.assertEqual(instances, {CW, PY})
        done = self.branch.stats(PY)["tasks"]["done"]
        self.assertGreater(done, 0)

    def test_06_python_handlers(self):
        dq = f"dq.{PY}"
        before = self.branch.stats(PY)["tasks"]
        result = self.result(self.send(dq, "reverse", "abc"))
        self.assertEqual((result["state"], result["result"], result["instance"]), ("SUCCESS", "cba", PY))
        result = self.result(self.send(dq, "py.raise", 7))
        self.assertEqual((result["state"], result["error"]), ("FAILURE", "no good: 7"))
        result = self.result(self.send(dq, "py.big", 70000))
        self.assertEqual(result["state"], "FAILURE")
        self.assertRegex(result["error"], r"^result of \d+ bytes exceeds the limit of 65536$")
        result = self.result(self.send(dq, "fail", {"message": "as asked"}))
        self.assertEqual((result["state"], result["error"]), ("FAILURE", "as asked"))
        result = self.result(self.send(dq, "sleep", {"ms": 10}))
        self.assertEqual(result["result"], {"slept_ms": 10})
        result = self.result(self.send(dq, "nope"))
        self.assertEqual((result["state"], result["error"]), ("FAILURE", "unknown handler 'nope'"))
        result = self.result(self.send(dq, "py.context"))
        instance_dir = str(self.branch.root / "instances" / PY)
        self.assertEqual(result["result"], {"cwd": instance_dir, "env": {
            "CYME_INSTANCE": PY, "CYME_APP": APP, "CYME_BROKER": self.branch.bootstrap,
            "CYME_INSTANCE_DIR": instance_dir, "FLEET_TEST_MARK": "from-the-model"}})
        # A task that cannot be run but carries an id is answered, not dropped.
        bad_id = f"bad-task-{uuid.uuid4().hex}"
        self.control.producer.produce(dq, key=bad_id.encode(),
                                      value=json.dumps({"v": 1, "id": bad_id, "handler": 5}).encode())
        self.control.producer.flush(10)
        result = self.result(bad_id)
        self.assertEqual((result["state"], result["instance"]), ("FAILURE", PY))
        self.assertEqual(result["error"], 'invalid task: "handler" is not a string')
        # Counted by the state published: the result too large is a failure.
        # (A redelivered task of the shared queue may add to "done" only.)
        after = self.branch.stats(PY)["tasks"]
        self.assertEqual(after["failed"] - before["failed"], 5)
        self.assertGreaterEqual(after["done"] - before["done"], 3)

    def test_07_kill_9_is_repaired(self):
        old = self.branch.instance(PY)["pid"]
        os.kill(old, signal.SIGKILL)
        instance = wait_for("py restarted", lambda: self.running(PY, other_than=old))
        self.assertEqual(instance["restarts"], 1)
        self.assertFalse(alive(old))
        wait_for("py answering stats", lambda: self.branch.stats(PY))

    def test_08_bad_control_messages_are_dropped(self):
        before = self.dropped_control_lines()
        bad = [b"not json at all",
               b'{"v": 1, "id": "x", "op": "ping"',
               json.dumps({"v": 2, "id": "b1", "op": "ping", "reply_to": Control.REPLY_TOPIC, "to": [PY]}),
               json.dumps({"v": 1, "id": 42, "op": "ping", "reply_to": Control.REPLY_TOPIC, "to": [PY]}),
               json.dumps({"v": 1, "id": "b2", "op": "reboot", "reply_to": Control.REPLY_TOPIC, "to": [PY]}),
               json.dumps({"v": 1, "id": "b3", "op": "autoscale", "reply_to": Control.REPLY_TOPIC, "to": [PY],
                           "args": {"max": "9", "min": 1}}),
               json.dumps({"v": 1, "id": "b4", "op": "add_consumer", "reply_to": Control.REPLY_TOPIC, "to": [PY],
                           "args": {"queue": "bad name"}})]
        for message in bad:
            self.control.publish(message if isinstance(message, bytes) else message.encode())
        wait_for(f"{len(bad)} dropped control messages in py's log",
                 lambda: self.dropped_control_lines() - before >= len(bad))
        self.assertEqual(self.dropped_control_lines() - before, len(bad))
        replies = self.control.command("stats", [PY])
        self.assertEqual(replies[PY]["result"]["autoscale"]["max"], 5, "the bad autoscale was not applied")
        self.assertEqual(replies[PY]["result"]["queues"], [f"dq.{PY}", QUEUE])

    def test_09_disable_and_enable(self):
        old = self.branch.instance(PY)["pid"]
        logged = len(self.branch.worker_log(PY))
        self.branch.ok("POST", f"/{APP}/instances/{PY}/disable/", {"reason": "tour"})
        wait_for("py's process gone", lambda: not alive(old))
        self.assertIn(self.branch.instance(PY)["state"], ("stopped", "disabled"))

        def last_lines():
            # They reach worker.log through its log writer, just after.
            text = self.branch.worker_log(PY)[logged:]
            return text if "stopped after" in text else ""

        log = wait_for("py's last lines in its log", last_lines)
        self.assertIn("terminated by signal", log)
        self.assertRegex(log, r"stopped after \d+ done, \d+ failed")
        self.branch.ok("POST", f"/{APP}/instances/{PY}/enable/", {})
        wait_for("py running again", lambda: self.running(PY, other_than=old))

    def test_10_shutdown_command(self):
        old = self.branch.instance(PY)["pid"]
        logged = len(self.branch.worker_log(PY))
        replies = self.control.command("shutdown", [PY])
        self.assertEqual(replies[PY]["result"], {})
        wait_for("py's process gone after shutdown", lambda: not alive(old))
        wait_for("'shutdown requested' in py's log",
                 lambda: "shutdown requested" in self.branch.worker_log(PY)[logged:])
        wait_for("py started again by verification", lambda: self.running(PY, other_than=old))

    def test_11_delete(self):
        if self.broker.password:
            self.assertNotIn(self.broker.password, self.branch.worker_log(PY), "the password stays secret")
        pid = self.branch.instance(PY)["pid"]
        self.branch.ok("DELETE", f"/{APP}/instances/{PY}/")
        wait_for("py's process gone", lambda: not alive(pid))
        self.assertEqual(self.branch.call("GET", f"/{APP}/instances/{PY}/")[0], 404)
        self.assertTrue(self.running(CW), "cw is untouched")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} BUILD_DIR")
    BUILD_DIR = Path(sys.argv[1]).resolve()
    outcome = unittest.main(argv=sys.argv[:1], failfast=True, verbosity=2, exit=False).result
    branch = getattr(FleetTour, "branch", None)
    if branch is not None:
        if outcome.wasSuccessful():
            shutil.rmtree(branch.root)
        else:
            print(f"the branch's root, with every log, is kept: {branch.root}", file=sys.stderr)
    sys.exit(0 if outcome.wasSuccessful() else 1)
