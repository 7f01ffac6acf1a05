"""Task handlers: what a worker runs for a task, by name.

A handler takes the task's ``args`` (any JSON value: dict, list, str, int,
float, bool or None) and returns a JSON-serialisable result. Raising an
exception fails the task: the result is FAILURE with the exception's message,
and the worker goes on.

    from cyme_worker import task

    @task
    def double(args):            # handler "double"
        return args * 2

    @task("reverse")             # handler "reverse"
    def reverse_text(args):
        return args[::-1]
"""

import time
from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], Any]

#: Task names are at most this long: the branch's HTTP API refuses longer ones.
MAX_HANDLER_NAME = 64
#: Longest `sleep`, as cyme-worker allows.
MAX_SLEEP_MS = 3_600_000


class Registry:
    """Handlers by name. A worker runs the handlers of one registry, the
    built-in ones added where the program registered none of the same name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, name: str, handler: Handler) -> Handler:
        """Registers (or replaces) the handler called `name`; returns it, so
        that `add` also serves as a decorator's body."""
        if not isinstance(name, str) or not 0 < len(name) <= MAX_HANDLER_NAME:
            raise ValueError(f"a handler name is 1 to {MAX_HANDLER_NAME} characters, not {name!r}")
        if not callable(handler):
            raise TypeError(f"handler {name!r} is not callable: {handler!r}")
        self._handlers[name] = handler
        return handler

    def task(self, name_or_handler: str | Handler | None = None, /):
        """Decorator: ``@registry.task`` registers a function under its own
        name, ``@registry.task("name")`` under the name given."""
        if callable(name_or_handler):
            return self.add(name_or_handler.__name__, name_or_handler)
        if name_or_handler is not None and not isinstance(name_or_handler, str):
            raise TypeError(f"@task takes a handler name or nothing, not {name_or_handler!r}")

        def register(handler: Handler) -> Handler:
            return self.add(name_or_handler or getattr(handler, "__name__", ""), handler)

        return register

    def get(self, name: str) -> Handler | None:
        """The handler called `name`, or None."""
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def add_builtins(self) -> None:
        """Adds `echo`, `sleep` and `fail` where no handler of that name was
        registered: a program's own handler wins over a built-in one."""
        for name, handler in (("echo", echo), ("sleep", sleep), ("fail", fail)):
            self._handlers.setdefault(name, handler)


def echo(args: Any) -> Any:
    """The result is the task's arguments."""
    return args


def sleep(args: Any) -> dict:
    """Sleeps `args` seconds (a number) or ``{"ms": N}`` milliseconds, at
    most one hour; the result is ``{"slept_ms": N}``."""
    if isinstance(args, (int, float)) and not isinstance(args, bool) and args >= 0:
        ms = int(args * 1000)
    elif isinstance(args, dict) and type(args.get("ms")) is int and args["ms"] >= 0:
        ms = args["ms"]
    else:
        raise ValueError('sleep takes seconds or {"ms": N}')
    if ms > MAX_SLEEP_MS:
        raise ValueError("sleep is limited to one hour")
    time.sleep(ms / 1000)
    return {"slept_ms": ms}


def fail(args: Any) -> Any:
    """Always fails, with ``args["message"]`` when that is a string."""
    if isinstance(args, dict) and isinstance(args.get("message"), str):
        raise RuntimeError(args["message"])
    raise RuntimeError("task failed on purpose")


#: The registry `@task` adds to and ``python -m cyme_worker`` runs.
registry = Registry()
task = registry.task
