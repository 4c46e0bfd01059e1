"""One-line errors for the scripts, with exit statuses a shell can test.

Exit status 2: the user asked for something that cannot run (a missing
file, an unknown key, a bad flag value); nothing was done. Exit status 1
(evaluate.py, predict.py, prepare_data.py --check): the job ran, but bad
input files were found or skipped. 130: interrupted by Ctrl-C.
"""

import os
import sys

USER_ERROR = 2


def fail(message) -> None:
    """Stops the script with `<script>: error: <message>` on stderr.

    Args:
        message: what is wrong, naming the flag, key or file.

    Raises:
        SystemExit: always, with status `USER_ERROR`.
    """
    script = os.path.basename(sys.argv[0])
    print(f"{script}: error: {message}", file=sys.stderr)
    raise SystemExit(USER_ERROR)
