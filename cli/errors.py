"""User errors: one line on stderr, exit status 2, never a traceback."""

from __future__ import annotations

import functools
import sys

import typer

USER_ERROR = 2


class UserError(Exception):
    """Something the person running the command can fix (bad file, name, option...)."""


def one_line(message: str) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    return " ".join(str(message).split())


def fail(message: str) -> None:
    """Print ``error: message`` as one line on stderr and exit with status 2."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(USER_ERROR)


def user_errors(command):
    """Decorator: a :class:`UserError` raised by ``command`` becomes :func:`fail`."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as e:
            fail(str(e))

    return wrapper
