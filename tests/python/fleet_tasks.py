"""Task handlers the fleet test runs on its Python instance: one of each way
a handler can end."""

import os

from cyme_worker import registry, task


@task
def reverse(args):
    """Python-only: cyme-worker has no handler of this name."""
    return args[::-1]


@task("py.raise")
def raise_error(args):
    raise ValueError(f"no good: {args}")


@task("py.big")
def big(args):
    """A result larger than a message may be: must come back as FAILURE."""
    return "x" * args


registry.add("py.not_json", lambda args: {"a set": {1, 2}})


@task("py.context")
def context(args):
    """What the branch gave the process: its working directory and the
    environment the launch contract promises."""
    names = ("CYME_INSTANCE", "CYME_APP", "CYME_BROKER", "CYME_INSTANCE_DIR", "FLEET_TEST_MARK")
    return {"cwd": os.getcwd(), "env": {name: os.environ.get(name) for name in names}}
