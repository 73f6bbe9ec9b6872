"""Whether the server takes new model work: closed while it shuts down."""

from opencode.core.errors import ServiceUnavailable

SHUTDOWN_RETRY_AFTER = 5  # seconds: about how long a restart or a switch to a new instance takes


class Gate:
    def __init__(self) -> None:
        self.open = True

    def close(self) -> None:
        self.open = False

    def check(self) -> None:
        """Raise 503 (with ``Retry-After``) once the server is shutting down."""
        if not self.open:
            raise ServiceUnavailable(
                "The server is shutting down and takes no new turns; retry in a few seconds.",
                retry_after=SHUTDOWN_RETRY_AFTER,
            )
