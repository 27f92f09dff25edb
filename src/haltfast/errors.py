"""Exceptions that the CLI turns into one clear message and a non-zero exit."""


class HaltfastError(Exception):
    """A user-facing error: bad input, missing data, a model that cannot be used."""


class DataError(HaltfastError):
    """Image data that cannot be used as given: bad labels, pixels, layout, files or format."""


class DataNotFoundError(DataError):
    """A data set that is not installed on this machine."""


class ModelOutputError(HaltfastError):
    """The base classifier returned something that is not a valid prediction."""


class OutputError(HaltfastError):
    """An output path that cannot be written (a directory, read-only, or in a folder that cannot be made)."""
