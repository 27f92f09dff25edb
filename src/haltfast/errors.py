"""Exceptions that the CLI turns into one clear message and a non-zero exit.

One class per kind of mistake, all HaltfastError, so that a caller can catch one kind (`except DataError`) or
all of them (`except HaltfastError`); every message says what to do about it.
"""


class HaltfastError(Exception):
    """A user-facing error: bad input, missing data, a model that cannot be used."""


class UsageError(HaltfastError):
    """An argument or option out of its range, or options that do not go together."""


class DataError(HaltfastError):
    """Image data that cannot be used as given: bad labels, pixels, layout, files or format."""


class DataNotFoundError(DataError):
    """A data set that is not installed on this machine."""


class ModelError(HaltfastError):
    """A model, its weights or its model card that cannot be loaded or used, or a base classifier that fails."""


class ModelOutputError(ModelError):
    """The base classifier returned something that is not a valid prediction."""


class OutputError(HaltfastError):
    """An output path that cannot be written (a directory, read-only, or in a folder that cannot be made), or that
    holds a file of something else."""


class JournalError(HaltfastError):
    """A results journal that belongs to another run: not a journal, corrupt, in use, or of another configuration."""


class RecordingError(HaltfastError):
    """A recording of noisy predictions that is missing, incomplete, corrupt or of another configuration."""


class PolicyError(HaltfastError):
    """A triage policy file or policy class that cannot be used."""
