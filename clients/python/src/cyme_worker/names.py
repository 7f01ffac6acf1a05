"""Names and broker lists as the cyme branch validates them.

App, instance and queue names become Kafka topics, paths and process
arguments, so a worker must refuse exactly what the branch refuses: 1 to 64
ASCII characters of ``[A-Za-z0-9._-]`` starting with a letter or digit.
"""

import re

MAX_NAME_LENGTH = 64

_NAME_START = re.compile(r"[A-Za-z0-9]")
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"[A-Za-z0-9._-]*")
_PORT = re.compile(r"[0-9]{1,5}")


def name_problem(what: str, name: str) -> str | None:
    """Why ``name`` is not a valid name of a ``what``, or None when it is."""
    if not name:
        return f"{what} name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} name {name[:16]!r}... is longer than {MAX_NAME_LENGTH} characters"
    if not _NAME_START.fullmatch(name[0]):
        return f"{what} name {name!r} must start with a letter or digit"
    if not _NAME.fullmatch(name):
        return f"{what} name {name!r} may only hold letters, digits, '.', '_' and '-'"
    return None


def broker_problem(servers: str) -> str | None:
    """Why ``servers`` is not ``host:port[,host:port...]``, or None."""
    for item in servers.split(","):
        host, colon, port = item.rpartition(":")
        if not colon or not host:
            return f"broker {servers!r} is not host:port[,host:port...]"
        if not _HOST.fullmatch(host):
            return f"broker host {host!r} is not a host name or address"
        if not _PORT.fullmatch(port) or not 0 < int(port) <= 65535:
            return f"broker port {port!r} is not a port number"
    return None


def direct_queue(instance: str) -> str:
    """The queue only ``instance`` consumes, which it never stops consuming."""
    return f"dq.{instance}"
