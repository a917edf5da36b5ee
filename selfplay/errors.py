"""The error users see: one line naming the file, field or value at fault (no library traceback)."""


class SelfplayError(Exception):
    """A problem with the user's input or configuration; printed as one line by `selfplay.run`."""
