"""Errors a user can act on. Each carries its exit status (contract: 1 refused, 2 usage)."""

from __future__ import annotations


class Qa2Error(Exception):
    """A refusal or failure: the message is one or more complete lines for the user."""

    exit_code = 1

    def __init__(self, message: str, *, lines: tuple[str, ...] = (), plugin: str | None = None) -> None:
        super().__init__(message)
        self.lines = lines or (message,)
        self.plugin = plugin  # the plugin that claimed the input, when one did


class UsageError(Qa2Error):
    """A bad option or value (exit 2)."""

    exit_code = 2


class NotDetected(Qa2Error):
    """No plugin claims the input."""


class AmbiguousDelivery(Qa2Error):
    """Two or more plugins share the top score."""


class PluginFailed(Qa2Error):
    """A plugin raised inside a hook: a plugin bug, never read as 'no claim'."""


class ValidationFailed(Qa2Error):
    """The planned or packaged tree breaks rules at level ERROR."""
