"""The one exception type the library raises for bad input.

Every message names the file (or config key) and the problem, so that the
workflow and the CLI can print it as is and stop.
"""

import sys


class InputError(Exception):
    """Bad input: a missing or corrupt file, inconsistent data, a config error."""


class ConfigError(InputError):
    """A config value that is missing, unknown or invalid."""


def warn(message: str) -> None:
    """One line on stderr for something the user should know but that does not stop the run."""
    print(f"liverseg: warning: {message}", file=sys.stderr)


def raise_problems(problems: list[str], what: str) -> None:
    """Raise one InputError for every problem found (none: return): one line for one
    problem, else a line for `what` and one indented line per problem."""
    if len(problems) == 1:
        raise InputError(f"{what}: {problems[0]}")
    if problems:
        raise InputError(f"{what}: {len(problems)} problems:\n  " + "\n  ".join(problems))
