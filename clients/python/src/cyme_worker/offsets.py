"""Which offset of each partition may be committed when tasks of one
partition finish out of order (as cyme-worker's worker/offset_tracker.hpp).

The commit point of a partition is the oldest task still running, or the one
after the newest task done when none runs. A worker killed mid-task therefore
leaves every unfinished task to be delivered again and never skips one: the
delivery is at-least-once.
"""

from dataclasses import dataclass, field


@dataclass
class _Partition:
    running: set[int] = field(default_factory=set)
    newest_done: int = -1
    stored: int = -1


class OffsetTracker:
    """Not thread-safe: its owner serialises calls."""

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}

    def started(self, partition: int, offset: int) -> None:
        """A task at `offset` was taken."""
        state = self._partitions.get(partition)
        if state is None:
            # Where consumption began is where the group's commit already stands.
            state = self._partitions[partition] = _Partition(stored=offset)
        state.running.add(offset)

    def finished(self, partition: int, offset: int) -> int | None:
        """The task at `offset` finished. Returns the next offset to store
        when the commit point moved forward."""
        state = self._partitions[partition]
        state.running.discard(offset)
        state.newest_done = max(state.newest_done, offset)
        following = min(state.running) if state.running else state.newest_done + 1
        if following <= state.stored:
            return None
        state.stored = following
        return following

    def in_flight(self) -> int:
        """Tasks taken and not finished, over all partitions."""
        return sum(len(p.running) for p in self._partitions.values())

    def forget(self) -> None:
        """Drops every partition: they were revoked with nothing in flight,
        and a partition assigned again starts where the group committed."""
        self._partitions.clear()
