"""The one exception the CLI turns into a clear message and a non-zero exit."""


class UserError(Exception):
    """Something the user must fix or install; the message says what."""
