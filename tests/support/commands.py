"""A MongoDB command listener, to count and inspect the round trips a client makes."""

from __future__ import annotations

from typing import Any

from pymongo import monitoring


class Commands(monitoring.CommandListener):
    """Every command a client sent: (name, the command document)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Remember the command."""
        self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to add."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to add."""

    def names(self) -> list[str]:
        """The commands' names, in order."""
        return [name for name, _ in self.sent]
