"""The library's typed errors. Each message names the input, says what is wrong and how to fix it.

The command-line tools turn them into one line, ``prog: error: <message>``, and exit code 2.
"""


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupted or not what was expected."""


class ConfigError(ValueError):
    """A run setting is out of range, unknown, or does not fit the data (e.g. fewer images than a batch)."""
