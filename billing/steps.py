"""Step boundaries of the multi-step domain operations, where tests inject failures."""

from collections.abc import Callable

Checkpoint = Callable[[str], None]


def no_checkpoint(step: str) -> None:
    """Production checkpoint: nothing. Tests pass one that fails at a chosen step."""
