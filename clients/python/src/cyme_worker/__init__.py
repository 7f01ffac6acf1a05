"""Python workers for cyme fleets.

Write handlers with ``@task`` (or ``registry.add(name, fn)``) in a module and
run it as ``python -m cyme_worker --tasks MODULE`` (or ``cyme-python-worker``);
the branch appends the instance's flags. A program of its own calls ``main()``
after registering its handlers. docs/PROTOCOL.md in the cyme repository is the
contract this package implements.
"""

from .cli import main
from .handlers import Registry, registry, task

__all__ = ["Registry", "main", "registry", "task"]
