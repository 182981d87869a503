class KitError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits non-zero."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the submission)."""
