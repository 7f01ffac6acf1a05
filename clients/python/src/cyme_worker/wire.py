"""The JSON wire format of the cyme control protocol (docs/PROTOCOL.md).

Decoders take any bytes and either return a message or raise `Invalid` whose
text says in one sentence why the bytes were dropped; they accept exactly what
cyme-worker's decoders (messages/wire.cpp) accept, so that a command acted on
by one kind of worker is acted on by every kind. Encoders produce one compact
UTF-8 JSON object per Kafka message.
"""

import json
from dataclasses import dataclass
from typing import Any

from .names import name_problem

VERSION = 1
#: Largest command, task, reply or result a cyme receiver accepts, in bytes.
MAX_MESSAGE = 64 * 1024
#: Largest `max` (and `min`) of an `autoscale` command.
MAX_CONCURRENCY = 10000
MAX_ID_BYTES = 128
OPS = ("ping", "stats", "active_queues", "add_consumer", "cancel_consumer", "autoscale", "shutdown")


class Invalid(ValueError):
    """Bytes that are not a valid message; the text says why."""


class InvalidTask(Invalid):
    """A task that cannot be run. `task_id` is its id when it carries a valid
    one, so that the sender can still be told with a FAILURE result."""

    def __init__(self, reason: str, task_id: str | None):
        super().__init__(reason)
        self.task_id = task_id


@dataclass(frozen=True)
class Command:
    id: str
    op: str
    reply_to: str
    to: tuple[str, ...]
    #: The queue of add_consumer and cancel_consumer.
    queue: str | None = None
    #: The bounds of autoscale.
    max: int | None = None
    min: int | None = None


@dataclass(frozen=True)
class Task:
    id: str
    handler: str
    #: Any JSON value; None when the task has no "args".
    args: Any


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON. Raises ValueError (or TypeError) for
    what JSON cannot hold: NaN, infinities, objects of other types, strings
    with lone surrogates."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"a string is not valid Unicode ({e.reason})") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _load_object(raw: bytes, what: str) -> dict:
    """Parses `raw` as one JSON object, as strictly as cyme-worker does: valid
    UTF-8, no NaN or Infinity, no lone surrogates."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        dumps(doc)
    except (UnicodeDecodeError, ValueError):
        raise Invalid(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise Invalid(f"{what} is not a JSON object")
    return doc


def _check_size(raw: bytes, what: str) -> None:
    if len(raw) > MAX_MESSAGE:
        raise Invalid(f"{what} of {len(raw)} bytes exceeds the limit of {MAX_MESSAGE}")


def _check_version(doc: dict, what: str) -> None:
    v = doc.get("v")
    if type(v) is not int or v != VERSION:
        raise Invalid(f'{what} has no "v": {VERSION}')


def _string(doc: dict, key: str, *, required: bool = True) -> str | None:
    if key not in doc:
        if required:
            raise Invalid(f'missing "{key}"')
        return None
    value = doc[key]
    if not isinstance(value, str):
        raise Invalid(f'"{key}" is not a string')
    return value


def _count(doc: dict, key: str, limit: int) -> int:
    """A whole number from 0 to `limit` (JSON true, 4.0 or -1 are not)."""
    value = doc.get(key)
    if type(value) is not int or not 0 <= value <= limit:
        raise Invalid(f'"{key}" is not a number from 0 to {limit}')
    return value


def _strings(doc: dict, key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise Invalid(f'"{key}" is not an array')
    if not all(isinstance(x, str) for x in value):
        raise Invalid(f'"{key}" holds a non-string')
    return tuple(value)


def _id_problem(value: str) -> str | None:
    if not 0 < len(value.encode("utf-8")) <= MAX_ID_BYTES:
        return f'"id" must hold 1 to {MAX_ID_BYTES} bytes'
    return None


def decode_command(raw: bytes) -> Command:
    """A command from the control topic; raises Invalid when it must be
    dropped, never acting on part of one."""
    _check_size(raw, "command")
    doc = _load_object(raw, "command")
    _check_version(doc, "command")
    command_id = _string(doc, "id")
    op = _string(doc, "op")
    reply_to = _string(doc, "reply_to")
    to = _strings(doc, "to")
    if problem := _id_problem(command_id):
        raise Invalid(problem)
    if problem := name_problem("reply topic", reply_to):
        raise Invalid(problem)
    if op not in OPS:
        raise Invalid(f'unknown op "{op[:32]}"')
    args = doc.get("args", {})
    if not isinstance(args, dict):
        raise Invalid('"args" is not an object')
    extra: dict[str, Any] = {}
    if op in ("add_consumer", "cancel_consumer"):
        extra["queue"] = _string(args, "queue")
        if problem := name_problem("queue", extra["queue"]):
            raise Invalid(problem)
    elif op == "autoscale":
        extra["max"] = _count(args, "max", MAX_CONCURRENCY)
        extra["min"] = _count(args, "min", MAX_CONCURRENCY)
        if extra["min"] == 0 or extra["max"] < extra["min"]:
            raise Invalid("autoscale needs 1 <= min <= max")
    return Command(id=command_id, op=op, reply_to=reply_to, to=to, **extra)


def decode_task(raw: bytes) -> Task:
    """A task from a queue topic. Raises InvalidTask, carrying the task's id
    when it has a valid one (even if the task is too large, of another
    version or lacks a handler), so the worker can answer it with FAILURE
    instead of leaving its sender waiting forever."""
    try:
        doc = _load_object(raw, "task")
    except Invalid as e:
        raise InvalidTask(str(e), None) from None
    task_id = doc.get("id")
    if not isinstance(task_id, str) or _id_problem(task_id):
        task_id = None
    try:
        _check_size(raw, "task")
        _check_version(doc, "task")
        declared_id = _string(doc, "id")
        handler = _string(doc, "handler")
        if problem := _id_problem(declared_id):
            raise Invalid(problem)
    except Invalid as e:
        raise InvalidTask(str(e), task_id) from None
    return Task(id=declared_id, handler=handler, args=doc.get("args"))


def encode_reply(command: Command, sender: str, result: dict | None = None,
                 error: str | None = None) -> bytes:
    """The reply of `sender` to `command`: ok with `result`, or not ok with
    `error` when one is given."""
    doc: dict[str, Any] = {"v": VERSION, "id": command.id, "op": command.op,
                           "from": sender, "ok": error is None}
    if error is None:
        doc["result"] = result if result is not None else {}
    else:
        doc["error"] = error
    return dumps(doc)


@dataclass
class Result:
    """A task's outcome as it travels on the results topic."""

    id: str
    instance: str
    queue: str
    started_at_ms: int
    finished_at_ms: int
    #: The handler's result (SUCCESS); None for FAILURE.
    result: Any = None
    #: Why the task failed; None for SUCCESS.
    error: str | None = None

    def encode(self) -> bytes:
        """The result message. Raises ValueError when the handler's result
        cannot be JSON."""
        doc: dict[str, Any] = {
            "v": VERSION, "id": self.id,
            "state": "SUCCESS" if self.error is None else "FAILURE",
            "result": self.result if self.error is None else None,
            "instance": self.instance, "queue": self.queue,
            "started_at_ms": self.started_at_ms, "finished_at_ms": self.finished_at_ms,
        }
        if self.error is not None:
            doc["error"] = self.error
        return dumps(doc)
