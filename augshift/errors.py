"""The one exception type for user mistakes.

``UsageError`` is a ``ValueError`` (so code that catches ``ValueError`` keeps working); the ``augshift``
commands print its message as one line on standard error and exit with code 2. Anything else that escapes a
command is a bug and keeps its traceback.
"""
from __future__ import annotations


class UsageError(ValueError):
    """A user mistake (bad option, path, data or checkpoint); the message names what was wrong and the fix."""
