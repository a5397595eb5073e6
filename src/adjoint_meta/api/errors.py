"""The error every refused argument of the public API raises."""
from __future__ import annotations


class InputError(ValueError):
    """An argument the API cannot use; the message names the argument and says what to change."""
