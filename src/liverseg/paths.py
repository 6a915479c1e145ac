"""Where a command may write: never onto what it reads, never into a folder it cannot use.

The command-line tools take their input and output locations from the user, and a typo
(the same folder twice, a link, `..`) must not cost the input. Every check compares real
paths (links and `..` resolved) and runs before any work, so that a refused command has
read nothing expensive and written nothing.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path

from .errors import InputError

__all__ = [
    "real",
    "is_hidden",
    "is_hidden_below",
    "visible_files",
    "refuse_overwriting",
    "check_output_file",
    "check_output_folder",
    "check_fresh_folder",
    "remove_all_but",
]


def real(path: str | os.PathLike) -> Path:
    """`path` absolute, with `~`, links and `..` resolved (whether or not it exists)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def is_hidden(path: str | os.PathLike) -> bool:
    """Dot files: macOS's `._name` resource forks, editors' and our own temporary files."""
    return Path(path).name.startswith(".")


def is_hidden_below(path: Path, folder: Path) -> bool:
    """Whether `path`, or a folder between `folder` and it, is hidden."""
    return any(map(is_hidden, path.relative_to(folder).parts))


def visible_files(folder: Path) -> list[Path]:
    """The files directly in `folder` (links to files included), hidden ones left out, by name."""
    return sorted(p for p in folder.iterdir() if not is_hidden(p) and p.is_file())


def refuse_overwriting(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """InputError when any output would be written where an input lies (same real path)."""
    read = {real(p): Path(p) for p in inputs}
    for out in outputs:
        hit = read.get(real(out))
        if hit is not None:
            what = "is an input" if Path(out) == hit else f"is the input {hit}"
            raise InputError(f"{out}: {what}; writing the output there would overwrite it: choose another location")


def check_output_file(path: str | os.PathLike) -> None:
    """`path` can be written as a file: not a folder, and its folder exists or can be made, writable."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the output a file name")
    check_output_folder(path.parent)


def check_output_folder(folder: str | os.PathLike) -> None:
    """`folder` is a folder, or can be made as one, and can be written into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise InputError(f"{folder}: cannot be made, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: cannot write there ({existing} is read-only)")


def check_fresh_folder(folder: str | os.PathLike, overwrite: bool, layout: Collection[str]) -> None:
    """`folder` may receive a new set of files whose top-level entries are `layout`.

    It must be absent or empty, or, with `overwrite`, hold nothing but `layout`'s entries
    (an earlier set of the same kind): overwriting never deletes anything else, so a
    mistyped folder (a download, a home folder) is refused, not emptied.
    """
    folder = Path(folder)
    check_output_folder(folder)
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise InputError(
            f"{folder}: not empty (holds {_some(entries)}); choose a new folder, "
            "or pass --overwrite to replace what an earlier run wrote there"
        )
    foreign = [name for name in entries if name not in layout]
    if foreign:
        raise InputError(
            f"{folder}: holds {_some(foreign)}, which it would not write; "
            f"--overwrite replaces only {', '.join(sorted(layout))}: choose another folder"
        )


def remove_all_but(folder: str | os.PathLike, keep: Iterable[str | os.PathLike]) -> None:
    """Delete every file and folder under `folder` that is neither in `keep` nor holds one of it.

    After a set of files was rewritten with overwrite, what the earlier set had beyond
    the new one (stale subjects) would otherwise pass for part of it. Links are removed,
    never followed.
    """
    keep = {real(p) for p in keep}
    for root, dirs, files in os.walk(folder, topdown=False):
        for path in (os.path.join(root, name) for name in files + dirs):
            if os.path.islink(path) or (os.path.isfile(path) and real(path) not in keep):
                os.unlink(path)
            elif os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
