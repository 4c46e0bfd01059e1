import glob
import os

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_images(patterns) -> list:
    """Expands image files, folders and glob patterns into a file list.

    A file is taken as given; a folder contributes its JPEG and PNG files
    (not its subfolders'); anything else is a glob pattern (`**` recurses)
    whose JPEG and PNG matches are taken. Every pattern must match. Each
    group is sorted; duplicates are dropped, keeping the first.

    Args:
        patterns: a path or pattern, or a list of them.

    Returns:
        List of file paths.

    Raises:
        FileNotFoundError: naming the first pattern that matches no image
            (or when `patterns` is empty).

    Example:

    >>> find_images(["photos/", "more/*.png"])  # doctest: +SKIP
    ['photos/a.jpg', 'photos/b.png', 'more/c.png']
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    found = []
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        else:
            if os.path.isdir(pattern):
                names = os.listdir(pattern)
                candidates = [os.path.join(pattern, n) for n in names]
            else:
                candidates = glob.glob(pattern, recursive=True)
            matches = sorted(
                path
                for path in candidates
                if os.path.isfile(path)
                and path.lower().endswith(IMAGE_EXTENSIONS)
            )
        if not matches:
            # Every pattern must match, so a typo in one of several is not
            # silently skipped.
            raise FileNotFoundError(
                f"No image matches {pattern!r}: expected an image file, a "
                "folder or a glob pattern of "
                f"{'/'.join(IMAGE_EXTENSIONS)} files."
            )
        found.extend(path for path in matches if path not in found)
    if not found:
        raise FileNotFoundError("No input images given.")
    return found
