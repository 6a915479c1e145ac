"""The one exception type the library raises for bad input.

Every message names the file (or config key) and the problem, so that the
workflow and the CLI can print it as is and stop.
"""


class InputError(Exception):
    """Bad input: a missing or corrupt file, inconsistent data, a config error."""


class ConfigError(InputError):
    """A config value that is missing, unknown or invalid."""
