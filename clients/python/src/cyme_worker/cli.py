"""``python -m cyme_worker`` and ``cyme-python-worker``: load the handler
modules named by ``--tasks``, then run the worker."""

import importlib
import importlib.util
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from .handlers import Registry, registry
from .kafka import KafkaConfigError, read_kafka_config
from .options import UsageError, parse_options
from .worker import EXIT_USAGE, Worker

PROG = "cyme-python-worker"


def main(argv: list[str] | None = None, handlers: Registry = registry) -> int:
    """Runs a worker with the command line `argv` (default: sys.argv[1:])
    and the handlers of `handlers` plus the built-in ones; returns the exit
    status: 0 stopped gracefully, 1 no broker, 2 bad arguments."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_USAGE
    # A handler's print() reaches the instance's log at once, in order with
    # the worker's own lines.
    sys.stdout.reconfigure(line_buffering=True)
    logger = _logger(options.name)
    try:
        properties = read_kafka_config(options.kafka_config) if options.kafka_config else {}
    except KafkaConfigError as e:
        logger.error("%s", e)
        return EXIT_USAGE
    for module in options.tasks:
        try:
            _import(module)
        except Exception:  # noqa: BLE001 - any error in the user's module is bad input
            logger.error("--tasks %s cannot be imported:\n%s", module, traceback.format_exc().rstrip())
            return EXIT_USAGE
    handlers.add_builtins()
    logger.info("handlers: %s", ", ".join(handlers.names()))
    return Worker(options, handlers, properties, logger).run()


def _import(module: str) -> None:
    """Imports a module by name (from the working directory or sys.path, as
    ``python -m`` would), or a .py file by path."""
    if module.endswith(".py") or os.sep in module:
        path = Path(module).resolve()
        if path.stem in sys.modules:
            raise ImportError(f"a module named {path.stem!r} is already loaded: rename {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} is not a Python file")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    importlib.import_module(module)


def _logger(name: str) -> logging.Logger:
    """One line per event on stderr, as cyme-worker writes them:
    ``2024-05-01T12:00:00Z <instance>: <text>``."""
    formatter = logging.Formatter(f"%(asctime)s {name}: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logger = logging.getLogger("cyme_worker")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
