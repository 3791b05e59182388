"""The toolkit's one error base class, and how a command turns an error into ``error: ...``.

Every error omniactor raises on purpose (a broken record, a corrupt manifest, a checkpoint
with a missing shard, a config key of the wrong type, ...) derives from ``OmniactorError``
beside its usual built-in base (``class ManifestError(OmniactorError, ValueError)``), so
``except ValueError`` keeps working. The ``omniactor`` command prints such an error, and an
``OSError`` (a missing file, a permission, a full disk, with the path), as
``error: <message>`` on stderr and exits with status 2; it never shows a traceback for them.
``OMNIACTOR_DEBUG=1`` lets the traceback through.

Exit statuses of every command: 0 done; 1 ran and found problems (``data validate`` and
``actions parse`` findings, ``convert --strict`` skips, ...); 2 could not run (an error).

This module imports nothing, so any module may import it without cost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

#: set to 1 to see the traceback of an error the command line would print as ``error: ...``
DEBUG_ENV = "OMNIACTOR_DEBUG"
EXIT_FOUND_PROBLEMS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class OmniactorError(Exception):
    """Base of every error the toolkit raises on purpose; the message says what is wrong and how to fix it."""


class UsageError(OmniactorError, ValueError):
    """A command-line argument that cannot be used as given (the message names the flag)."""


def debugging() -> bool:
    """Whether ``OMNIACTOR_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def error_message(err: BaseException) -> str:
    """What to print after ``error:``: the message, the path of an OS error, any notes."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])  # str(KeyError) would quote it
    elif isinstance(err, OSError) and not isinstance(err, OmniactorError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror or err}"
        if err.filename2 is not None:
            text += f" (and {err.filename2})"
    else:
        text = str(err) or type(err).__name__
    notes = getattr(err, "__notes__", None) or []
    return "\n".join([text, *(str(n) for n in notes)])


def run_command(handler: Callable[[object], int | None], args: object) -> int:
    """Run a command's handler: its exit status, or 2 with ``error: ...`` for a known error."""
    try:
        return int(handler(args) or 0)
    except (OmniactorError, OSError) as err:
        if debugging():
            raise
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debugging():
            raise
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


EPILOG = (
    "Exit status: 0 done; 1 ran and found problems (e.g. `data validate` findings); 2 could not run "
    f"(printed as 'error: ...'). Set {DEBUG_ENV}=1 to see the traceback of an error."
)
