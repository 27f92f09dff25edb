"""Exceptions that the CLI turns into one clear message and a non-zero exit."""


class HaltfastError(Exception):
    """A user-facing error: bad input, missing data, a model that cannot be used."""


class DataNotFoundError(HaltfastError):
    """A data set that is not installed on this machine."""


class ModelOutputError(HaltfastError):
    """The base classifier returned something that is not a valid prediction."""
