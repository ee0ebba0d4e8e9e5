"""The base of every error the tool reports to users as one clear line (no traceback)."""


class SirstSynthError(ValueError):
    """An error about the user's input or output: its message names the file or id and the problem."""
