"""The one exception the data layer raises for anything wrong with input files."""


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupted or not what was expected.

    The message names the file, says what was expected and how to fix it.
    """
