"""Errors that are the user's to fix. Each message is one line naming what is wrong and what is
valid; the command line prints it and exits 2, Slack shows it as an ephemeral message."""


class UserError(Exception):
    """Bad input or an unreachable service: shown to the person as one line, never a traceback."""
