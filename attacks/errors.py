"""The one error a caller can fix: it names the argument (or spec key), what was expected and
what was found. The command line prints it as one line and exits with status 2."""


class UserError(ValueError):
    """Bad input from the user: a file, a name, an option or a spec value."""
