"""The Python worker's parts without Kafka: the wire format (as strict as
cyme-worker's, tests/unit/wire_test.cpp's cases and more), the command line,
the --kafka-config file, the offset tracker, the runner pool and the
built-in handlers.

    python -m unittest test_units      (tests/python/run.sh runs it)
"""

import contextlib
import io
import json
import tempfile
import threading
import time
import unittest
from pathlib import Path

from cyme_worker.handlers import Registry, fail, sleep
from cyme_worker.kafka import KafkaConfigError, read_kafka_config
from cyme_worker.offsets import OffsetTracker
from cyme_worker.options import UsageError, parse_options
from cyme_worker.pool import TaskPool
from cyme_worker.wire import (MAX_MESSAGE, Command, Invalid, InvalidTask, Result, decode_command, decode_task,
                              encode_reply)

GOOD = {"v": 1, "id": "x", "op": "ping", "reply_to": "r", "to": ["w1"]}


def command(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


class Wire(unittest.TestCase):
    def test_a_good_command_decodes(self):
        self.assertEqual(decode_command(command()), Command(id="x", op="ping", reply_to="r", to=("w1",)))
        self.assertEqual(decode_command(command(op="autoscale", args={"max": 4, "min": 2, "extra": 1})).max, 4)
        self.assertEqual(decode_command(command(op="add_consumer", args={"queue": "q.1"})).queue, "q.1")
        self.assertEqual(decode_command(json.dumps({k: v for k, v in GOOD.items() if k != "to"}).encode()).to, ())

    def test_malformed_commands_are_rejected_with_a_reason(self):
        good = command()
        without_v = {k: v for k, v in GOOD.items() if k != "v"}
        bad = [b"", b"not json", good[:len(good) // 2], b"[]", b"42", json.dumps(without_v).encode(),
               command(v=2), command(v=1.0), command(v=True), command(v="1"),
               command(id=7), command(id=""), command(id="x" * 129), command(id="\u00e9" * 65),
               command(op="explode"), command(reply_to="../r"), command(to="w1"), command(to=[1]),
               command(op="add_consumer", args={}), command(op="add_consumer", args={"queue": "a/b"}),
               command(op="cancel_consumer", args={"queue": 5}),
               command(op="autoscale", args={"max": 1, "min": 2}), command(op="autoscale", args={"max": -1, "min": 1}),
               command(op="autoscale", args={"max": 4.0, "min": 1}), command(op="autoscale", args={"max": "4", "min": 1}),
               command(op="autoscale", args={"max": True, "min": 1}), command(op="autoscale", args={"max": 10001, "min": 1}),
               command(op="autoscale", args={"max": 4, "min": 0}), command(op="autoscale", args="x"),
               command(args=[]), b'{"v": 1, "id": NaN}', b'{"v": 1, "id": "\\ud800", "op": "ping", "reply_to": "r"}',
               b'{"v": 1, "id": "\xff", "op": "ping", "reply_to": "r"}', b" " * (MAX_MESSAGE + 1)]
        for raw in bad:
            with self.assertRaises(Invalid, msg=raw[:80]) as caught:
                decode_command(raw)
            self.assertTrue(str(caught.exception))

    def test_an_invalid_task_keeps_its_id_when_it_has_one(self):
        task = decode_task(b'{"v": 1, "id": "t1", "handler": "echo", "args": {"a": [1, 2]}}')
        self.assertEqual((task.id, task.handler, task.args), ("t1", "echo", {"a": [1, 2]}))
        self.assertIsNone(decode_task(b'{"v": 1, "id": "t1", "handler": "echo"}').args)
        for raw, task_id in ((b'{"v": 1, "handler": "echo"}', None), (b"nonsense", None),
                             (b'{"v": 1, "id": "", "handler": "echo"}', None),
                             (b'{"v": 1, "id": "t2", "handler": 5}', "t2"),
                             (b'{"v": 2, "id": "t3", "handler": "echo"}', "t3"),
                             (json.dumps({"v": 1, "id": "t4", "handler": "echo", "args": "x" * MAX_MESSAGE}).encode(),
                              "t4")):
            with self.assertRaises(InvalidTask, msg=raw[:80]) as caught:
                decode_task(raw)
            self.assertEqual(caught.exception.task_id, task_id)

    def test_replies_and_results(self):
        ping = decode_command(command())
        self.assertEqual(json.loads(encode_reply(ping, "w1", {"pong": True})),
                         {"v": 1, "id": "x", "op": "ping", "from": "w1", "ok": True, "result": {"pong": True}})
        self.assertEqual(json.loads(encode_reply(ping, "w1", error="no")),
                         {"v": 1, "id": "x", "op": "ping", "from": "w1", "ok": False, "error": "no"})
        failure = json.loads(Result("t", "w1", "q", 1, 2, result="ignored", error="boom").encode())
        self.assertEqual((failure["state"], failure["result"], failure["error"]), ("FAILURE", None, "boom"))
        success = json.loads(Result("t", "w1", "q", 1, 2, result={"é": 1}).encode())
        self.assertEqual((success["state"], success["result"], "error" in success), ("SUCCESS", {"é": 1}, False))
        for unencodable in (float("nan"), {1, 2}, "\ud800"):
            with self.assertRaises(ValueError if not isinstance(unencodable, set) else TypeError):
                Result("t", "w1", "q", 1, 2, result=unencodable).encode()


class CommandLine(unittest.TestCase):
    BRANCH = ["--name", "w1", "--app", "a", "--broker", "h:9092", "--min", "1", "--max", "4",
              "--instance-dir", "/r/instances/w1", "--control-fetch-wait-ms", "10"]

    def test_unknown_flags_are_ignored(self):
        o = parse_options(["--tasks", "m1", "--user-flag", "v", "--tasks", "m2.py"] + self.BRANCH
                          + ["--queues", "q1,q2", "--future", "--later=x", "-z"])
        self.assertEqual((o.name, o.app, o.broker, o.queues, o.min, o.max, o.tasks),
                         ("w1", "a", "h:9092", ("q1", "q2"), 1, 4, ("m1", "m2.py")))

    def test_bad_arguments(self):
        for changes in (["--name", "bad name"], ["--app", ""], ["--broker", "nohost"], ["--broker", "h:99999"],
                        ["--queues", "q,q"], ["--queues", "dq.w1"], ["--queues", "a/b"], ["--min", "0"],
                        ["--min", "5"], ["--max", "10001"], ["--control-fetch-wait-ms", "0"]):
            with self.assertRaises(UsageError, msg=changes):
                parse_options(self.BRANCH + changes)
        for argv in (["--name", "w1"], self.BRANCH + ["--max", "many"]):
            with self.assertRaises(SystemExit) as caught, contextlib.redirect_stderr(io.StringIO()):
                parse_options(argv)
            self.assertEqual(caught.exception.code, 2)

    def test_kafka_config_file(self):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "kafka.properties"
            path.write_text("# comment\n\n  # indented comment\n security.protocol = SASL_SSL\n"
                            "sasl.password= p=w#d \n")
            self.assertEqual(read_kafka_config(str(path)),
                             {"security.protocol": " SASL_SSL", "sasl.password": " p=w#d "})
            for text, problem in (("sasl.password=secret\njust words\n", "line 2 is not key=value"),
                                  ("=secret\n", "line 1 has no key"),
                                  ("client.id=x\n", "'client.id' is set by cyme"),
                                  ("bootstrap.servers=h:1\n", "'bootstrap.servers' is set by cyme"),
                                  ("sasl.password=secret\r\n", "'sasl.password' is not one key=value line"),
                                  ("x" * (64 * 1024 + 1), "larger than 64 KiB")):
                path.write_text(text)
                with self.assertRaisesRegex(KafkaConfigError, problem) as caught:
                    read_kafka_config(str(path))
                self.assertNotIn("secret", str(caught.exception))
            with self.assertRaisesRegex(KafkaConfigError, "cannot be read"):
                read_kafka_config(str(Path(folder) / "missing"))


class Offsets(unittest.TestCase):
    def test_commit_point_waits_for_the_oldest_running_task(self):
        t = OffsetTracker()
        for offset in (10, 11, 12):
            t.started(0, offset)
        self.assertIsNone(t.finished(0, 11))
        self.assertIsNone(t.finished(0, 12))
        self.assertEqual(t.finished(0, 10), 13)
        t.started(1, 5)
        self.assertEqual(t.finished(1, 5), 6)
        self.assertEqual(t.in_flight(), 0)


class Pool(unittest.TestCase):
    def test_grows_to_max_and_blocks_beyond_it(self):
        pool = TaskPool(2, 1, keepalive=0.2)
        release = threading.Event()
        self.assertEqual(pool.size, 1)
        self.assertTrue(pool.submit(release.wait))
        self.assertTrue(pool.submit(release.wait))
        self.assertEqual(pool.size, 2)
        third = threading.Thread(target=pool.submit, args=(lambda: None,))
        third.start()
        third.join(0.2)
        self.assertTrue(third.is_alive(), "a third task waits while two run")
        release.set()
        third.join(5)
        self.assertFalse(third.is_alive())
        deadline = time.monotonic() + 5
        while pool.size > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(pool.size, 1, "idle runners above min leave")
        pool.set_bounds(4, 3)
        self.assertEqual((pool.bounds, pool.size), ((4, 3), 3))
        done = []
        pool.submit(lambda: (time.sleep(0.1), done.append(1)))
        pool.stop()
        self.assertEqual((done, pool.size, pool.submit(lambda: None)), ([1], 0, False))


class Handlers(unittest.TestCase):
    def test_registry_forms(self):
        registry = Registry()

        @registry.task
        def one(args):
            return 1

        @registry.task("two.b")
        def two(args):
            return 2

        registry.add("three", lambda args: 3)
        registry.add("echo", lambda args: "mine")
        registry.add_builtins()
        self.assertEqual(registry.names(), ["echo", "fail", "one", "sleep", "three", "two.b"])
        self.assertEqual(registry.get("echo")(None), "mine", "a program's handler wins over a built-in")
        with self.assertRaises(ValueError):
            registry.add("", one)
        with self.assertRaises(ValueError):
            registry.add("x" * 65, one)
        with self.assertRaises(TypeError):
            registry.add("x", "not callable")
        with self.assertRaises(TypeError):
            registry.task(5)

    def test_sleep_and_fail(self):
        self.assertEqual(sleep(0.0015), {"slept_ms": 1})
        self.assertEqual(sleep({"ms": 2}), {"slept_ms": 2})
        for bad in (-1, "1", True, None, {"ms": -1}, {"ms": 1.5}, {}):
            with self.assertRaisesRegex(ValueError, r'sleep takes seconds or \{"ms": N\}', msg=bad):
                sleep(bad)
        for too_long in (3600.001, 1e300, {"ms": 3_600_001}):
            with self.assertRaisesRegex(ValueError, "sleep is limited to one hour"):
                sleep(too_long)
        with self.assertRaisesRegex(RuntimeError, "^task failed on purpose$"):
            fail({"message": 5})
        with self.assertRaisesRegex(RuntimeError, "^why$"):
            fail({"message": "why"})


if __name__ == "__main__":
    unittest.main()
