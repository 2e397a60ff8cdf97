"""Errors that end a command with one clear line instead of a traceback."""


class ConfigError(Exception):
    """Bad configuration or an unreachable dependency, found at start."""


class NotFound(Exception):
    """A thing asked for does not exist (or the caller may not know it does)."""


class Forbidden(Exception):
    """The caller may not do this."""
