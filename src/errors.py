"""Errors that the entry points report as one line and a non-zero exit."""


class HDDError(Exception):
    """Base class for every user-facing error of the project."""


class ConfigError(HDDError):
    """A configuration value is invalid (unknown name, out of range, ...)."""


class DataError(HDDError):
    """A data set cannot be loaded or does not fit the request."""


class DistilledFileError(HDDError):
    """A distilled-set file is missing, corrupt or does not match the data set."""


class NonFiniteLossError(HDDError):
    """The matching loss became NaN or inf; the synthetic set is left untouched."""


class CheckpointError(HDDError):
    """A checkpoint is missing, unsafe, corrupt or belongs to a different run."""


class RunInterrupted(HDDError):
    """The run was stopped by SIGTERM after saving a checkpoint (exit status 128 + 15)."""

    exit_code = 143
