"""How a command ends when it does not finish: a user error is one line on stderr and exit
status 2, never a traceback; an interruption (Ctrl-C, or SIGTERM, which is taken as one) is
one line and status 130, the finished work kept; an unexpected error (a model or a factory that
raises or calls ``sys.exit`` mid-run) is one line naming it and status 1, the traceback only
with ``--debug``."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import traceback

import typer

from attacks.errors import UserError

__all__ = ["UserError", "command", "fail", "one_line"]

FAILED = 1
USER_ERROR = 2
INTERRUPTED = 130


def one_line(message: str) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    return " ".join(str(message).split())


def fail(message: str, status: int = USER_ERROR) -> None:
    """Print ``error: message`` as one line on stderr and exit with ``status``."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(status)


def _terminate(signum, frame):
    raise KeyboardInterrupt("stopped by SIGTERM")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C does) while the command runs, so that
    a run killed by a scheduler or ``kill`` records itself as interrupted and unlocks."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (a test runner's worker): leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def command(fn):
    """Decorator of every command: a :class:`UserError` or an :class:`OSError` (full disk,
    unwritable folder) becomes :func:`fail`; Ctrl-C and SIGTERM say what was kept and how to
    resume, exit status 130; any other exception, or a ``SystemExit`` from inside the run,
    is one line naming it, exit status 1 (with the traceback when the command's ``--debug``
    is given)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except typer.Exit:
            raise
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
        except (Exception, SystemExit) as e:
            if kwargs.get("debug"):
                traceback.print_exc()
            what = f"SystemExit({e.code!r}): something called sys.exit" \
                if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
            fail(f"the run failed: {what}; finished batches are kept"
                 + ("" if kwargs.get("debug") else " (--debug shows the traceback)"), FAILED)

    return wrapper
