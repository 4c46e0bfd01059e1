"""Files that appear whole or not at all, whatever moment a run is killed.

Every file a training run writes goes through these helpers: the content
is written under a temporary name in the target's own folder and renamed
over the target when complete. A rename within one file system is atomic
on POSIX and Windows, so a reader (a resumed run, a model server, a user)
sees either the previous file or the new one, never a prefix of it.
TensorBoard event files are the exception: they are append-only records
that TensorBoard reads up to the last complete one.

Temporary names start with `PARTIAL_PREFIX`; `remove_partial_files` clears
the leftovers of a killed writer.
"""

import contextlib
import json
import os
import shutil

PARTIAL_PREFIX = ".partial-"


def partial_path(path: str) -> str:
    """The temporary name `path` is written under before the rename.

    It keeps the file's extension (Keras picks the format from it) and
    names the writing process, so two processes never share one.

    Args:
        path: the final file or directory path.

    Returns:
        A sibling path starting with `PARTIAL_PREFIX`.
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f"{PARTIAL_PREFIX}{os.getpid()}-{name}")


@contextlib.contextmanager
def replaced_when_written(path: str):
    """Yields a temporary path; renames it to `path` if the block succeeds.

    The block writes a file or a directory at the yielded path. If the
    block raises, the temporary path is removed and `path` is untouched.
    A file replaces an existing file; a directory never replaces one (a
    directory cannot be renamed over another in one step).

    Args:
        path: the final file or directory path; its folder is created.

    Yields:
        The temporary path to write.

    Raises:
        FileExistsError: when the block wrote a directory and `path`
            exists.

    Example:

    >>> with replaced_when_written("/tmp/run/best.keras") as partial:
    ...     model.save(partial)  # doctest: +SKIP
    """
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    partial = partial_path(path)
    _remove(partial)
    try:
        yield partial
        if os.path.isdir(partial) and os.path.lexists(path):
            raise FileExistsError(f"{path} exists; it is not replaced.")
        os.replace(partial, path)
    finally:
        _remove(partial)


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (see the module docstring)."""
    with replaced_when_written(path) as partial:
        with open(partial, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str, value, indent: int | None = 2) -> None:
    """Writes `value` as JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=indent))


def remove_partial_files(folder: str) -> list:
    """Deletes the temporary files of killed writers directly in `folder`.

    Args:
        folder: a folder that `replaced_when_written` writes into; missing
            folders are fine.

    Returns:
        The removed paths.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in os.listdir(folder):
        if name.startswith(PARTIAL_PREFIX):
            path = os.path.join(folder, name)
            _remove(path)
            removed.append(path)
    return removed


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
