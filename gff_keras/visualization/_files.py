"""File naming shared by the functions that write one output per image."""

import os


def unique_stems(paths):
    """Maps each file's stem to its path, in order.

    Raises:
        ValueError: if two paths share a stem (their outputs would
            overwrite each other).
    """
    stems = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise ValueError(
                f"{stems[stem]!r} and {path!r} share the name {stem!r}; "
                "their outputs would overwrite each other."
            )
        stems[stem] = path
    return stems
