"""The command line a branch starts a worker with (docs/PROTOCOL.md, "Launch").

The branch appends its flags after the instance's own arguments and may add
flags of later versions, so flags this worker does not know are ignored,
never an error.
"""

import argparse
from dataclasses import dataclass

from .names import broker_problem, direct_queue, name_problem
from .wire import MAX_CONCURRENCY


class UsageError(ValueError):
    """Arguments that parse but cannot be run with; the text says which."""


@dataclass(frozen=True)
class Options:
    name: str
    app: str
    broker: str
    queues: tuple[str, ...]
    max: int
    min: int
    #: Modules (or .py files) that register task handlers.
    tasks: tuple[str, ...]
    control_fetch_wait_ms: int
    kafka_config: str | None
    #: Marks the process as the worker of this instance folder; not used.
    instance_dir: str | None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyme-python-worker", allow_abbrev=False,
        description="One worker instance of a cyme fleet, running Python task handlers. "
                    "Flags it does not know are ignored.")
    parser.add_argument("--tasks", action="append", default=[], metavar="MODULE",
                        help="import MODULE (a module name, or the path of a .py file) so that "
                             "its @task handlers register; repeatable")
    parser.add_argument("--name", required=True, help="instance name")
    parser.add_argument("--app", required=True, help="app the instance belongs to")
    parser.add_argument("--broker", required=True, help="bootstrap servers host:port[,...]")
    parser.add_argument("--queues", default="", help="queues to consume, comma-separated")
    parser.add_argument("--max", type=int, default=1, help="most task runners")
    parser.add_argument("--min", type=int, default=1, help="fewest task runners")
    parser.add_argument("--control-fetch-wait-ms", type=int, default=10, metavar="MS",
                        help="fetch.wait.max.ms of the control reader")
    parser.add_argument("--kafka-config", metavar="FILE",
                        help="librdkafka properties, key=value a line, for every Kafka client")
    parser.add_argument("--instance-dir", metavar="DIR",
                        help="the branch's folder of this instance (marks the process)")
    return parser


def parse_options(argv: list[str]) -> Options:
    """Options from `argv` (without the program name). A malformed command
    line exits 2 with usage, as argparse does; arguments that parse but are
    invalid raise UsageError."""
    args, _unknown = _parser().parse_known_args(argv)
    options = Options(
        name=args.name, app=args.app, broker=args.broker,
        queues=tuple(args.queues.split(",")) if args.queues else (),
        max=args.max, min=args.min, tasks=tuple(args.tasks),
        control_fetch_wait_ms=args.control_fetch_wait_ms,
        kafka_config=args.kafka_config, instance_dir=args.instance_dir)
    if problem := options_problem(options):
        raise UsageError(problem)
    return options


def options_problem(o: Options) -> str | None:
    """The first reason `o` cannot be run with, or None."""
    problem = (name_problem("instance", o.name) or name_problem("app", o.app)
               or (broker_problem(o.broker) if o.broker else "--broker is empty"))
    if problem:
        return problem
    seen = set()
    for queue in o.queues:
        if problem := name_problem("queue", queue):
            return problem
        if queue == direct_queue(o.name):
            return f"queue {queue!r} is the direct queue, always consumed"
        if queue in seen:
            return f"queue {queue!r} is listed twice"
        seen.add(queue)
    if not 1 <= o.min <= o.max <= MAX_CONCURRENCY:
        return f"--min and --max must satisfy 1 <= min <= max <= {MAX_CONCURRENCY}"
    if not 1 <= o.control_fetch_wait_ms <= 10000:
        return "--control-fetch-wait-ms must be 1 to 10000"
    return None
