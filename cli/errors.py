"""User errors: one line on stderr, exit status 2, never a traceback; an interruption: one
line and exit status 130, the finished work kept."""

from __future__ import annotations

import functools
import sys

import typer

from attacks.errors import UserError

__all__ = ["UserError", "command", "fail", "one_line"]

USER_ERROR = 2
INTERRUPTED = 130


def one_line(message: str) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    return " ".join(str(message).split())


def fail(message: str) -> None:
    """Print ``error: message`` as one line on stderr and exit with status 2."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(USER_ERROR)


def command(fn):
    """Decorator of every command: a :class:`UserError` or an :class:`OSError` (full disk,
    unwritable folder) becomes :func:`fail`; Ctrl-C says what was kept and how to resume, exit
    status 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            fail(str(e))
        except OSError as e:  # a full disk, a folder that cannot be created...
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}{e.strerror or e}; finished batches are kept (run the same command "
                 "again to resume)")
        except KeyboardInterrupt as e:
            sys.stderr.write(f"interrupted: {one_line(str(e)) or 'stopped'}; run the same "
                             "command again to resume\n")
            raise typer.Exit(INTERRUPTED)

    return wrapper
