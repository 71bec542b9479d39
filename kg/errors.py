"""Errors of the knowledge service, converted at the boundary with ``raise … from``.

KgError
├── InvalidInput        bad input; names the field, never echoes the value
├── NotFound            an id that does not exist (names the field)
├── Conflict            the same id with different content, a stale version
├── Unavailable         a backend cannot be reached
│   ├── GraphUnavailable    the Bolt server is down or refuses us
│   └── RedisUnavailable    redis-server is down
├── GraphError          the graph server did something it should not (a write fell short)
├── ReadOnlyViolation   a write attempted through a read-only entry point
├── StackError          the local stack (``kg up``) failed to start or stop
└── ConfigError         a setting is missing or malformed (names the variable)
"""


class KgError(Exception):
    """Base of every error the service raises on purpose."""


class InvalidInput(KgError):
    """Input that breaks a rule; the message names the field only."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(InvalidInput):
    """A referenced id does not exist; a kind of bad input, so it names the field."""


class Conflict(KgError):
    """The request contradicts what is stored (same id, other content)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class Unavailable(KgError):
    """A backend the request needs cannot be reached."""


class GraphUnavailable(Unavailable):
    """The graph server cannot be reached over Bolt."""


class RedisUnavailable(Unavailable):
    """The Redis server cannot be reached."""


class GraphError(KgError):
    """The graph server answered, but not as the statement requires; nothing was committed."""


class ReadOnlyViolation(KgError):
    """A write was attempted through a read-only entry point."""


class StackError(KgError):
    """The local stack could not be started, checked or stopped."""


class ConfigError(KgError):
    """A setting is missing or malformed; names the environment variable."""
