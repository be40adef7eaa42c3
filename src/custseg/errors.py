"""Error classes that custseg raises for bad input and bad settings.

The CLI prints the message of any `CustsegError` as one line on stderr and exits with 1; the
API maps the same classes to HTTP status codes. Every message names the file, and where known
the row and the column, at fault.
"""


class CustsegError(Exception):
    """Base class of every error caused by the user's input or settings."""


class InputFileError(CustsegError):
    """The input file does not exist, is not a file, or has a format custseg cannot read."""


class EmptyInputError(CustsegError):
    """The input holds no header or no data rows."""


class EncodingError(CustsegError):
    """The input's bytes cannot be decoded as text."""


class MissingColumnsError(CustsegError):
    """A required canonical column is not in the input and not mapped."""


class InvalidValueError(CustsegError):
    """A column holds values of the wrong kind (e.g. text where numbers are expected)."""


class NoRowsLeftError(CustsegError):
    """Cleaning rejected every row, so there is nothing to analyse."""


class ConfigError(CustsegError):
    """A setting (command-line option or custseg.toml entry) is invalid."""


class RenamedSettingWarning(UserWarning):
    """A setting was given under its earlier name; it is read under the new one."""
