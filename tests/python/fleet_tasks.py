"""Task handlers the fleet test runs on its Python instance: one of each way
a handler can end."""

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
