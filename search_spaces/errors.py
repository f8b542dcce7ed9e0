"""Errors that mean "the input was wrong", shared by every hwnas package.

They subclass ValueError so API users can catch them the ordinary way; the CLI turns them into
one line on stderr and exit status 2.
"""


class UserError(ValueError):
    """Bad input from the user: the message says what was wrong and what is accepted."""


class InvalidArchError(UserError):
    """An architecture that does not belong to the space it was given to."""
