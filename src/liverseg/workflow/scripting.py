"""Glue for workflow/scripts: log redirection and one clear message on bad input.

A script body runs inside `script_context(snakemake)`: its output goes to the rule's log,
an InputError becomes a single line 'liverseg: <message>' on the log and on the terminal,
with exit status 1, instead of a traceback, and any other exception (a bug) is raised
with its traceback written to the log as well.
"""

from __future__ import annotations

import contextlib
import sys
import traceback

from ..errors import InputError


@contextlib.contextmanager
def script_context(smk):
    log_path = smk.log[0] if len(smk.log) else None
    log = open(log_path, "a", buffering=1) if log_path else None
    terminal = sys.stderr
    try:
        with contextlib.ExitStack() as stack:
            if log:
                stack.enter_context(contextlib.redirect_stdout(log))
                stack.enter_context(contextlib.redirect_stderr(log))
            try:
                yield
            except InputError as exc:
                message = f"liverseg: {exc}"
                print(message, file=sys.stderr)
                if log:
                    print(message, file=terminal)
                raise SystemExit(1) from None
            except Exception:
                # A bug, not bad input: the traceback goes to the log that Snakemake points
                # the user to, and still to the terminal when the exception leaves.
                traceback.print_exc()
                raise
    finally:
        if log:
            log.close()
