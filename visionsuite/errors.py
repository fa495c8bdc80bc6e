"""The base of every error caused by the user's input (config, data, weights).

The CLI prints these as one line (``visionsuite: error: …``) and exits with status 2,
instead of a traceback through Lightning's internals.
"""


class VisionSuiteError(Exception):
    """An error the user can fix from its message alone."""


class ConfigError(VisionSuiteError, ValueError):
    """A config value that cannot work (e.g. ``num_classes`` disagreeing with the data)."""


class DataWarning(UserWarning):
    """Input that was skipped or changed and counted (unreadable files, clipped boxes): the CLI prints
    it as one ``visionsuite: warning: …`` line, not as a warning located in Lightning's code."""
