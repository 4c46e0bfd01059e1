"""Runs several command lines of one script in one process.

    python tests/script_runs.py SCRIPT < commands.json > results.json

`commands.json` is a list of flag lists; each runs as `python
scripts/SCRIPT FLAGS` would (absl's `app.run` with a fresh parse of the
flags, `sys.argv` set), its stdout and stderr captured. An exception that
escapes prints its traceback to that command's stderr with exit status 1,
as the interpreter does. The results are a JSON list of `[exit status,
stdout, stderr]`.

For the scripts' error cases: each fails before any model is built, so a
process per case would spend nearly all its time importing TensorFlow.
Use `run_commands` from a test.
"""

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")


def run_python(args, env=None, timeout=600, stdin=None):
    """Runs `python ARGS` from the repository root, output captured.

    Returns:
        The `subprocess.CompletedProcess`.
    """
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(
            os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})
        ),
        timeout=timeout,
        cwd=REPO,
    )


def run_commands(script, *commands, env=None, timeout=300):
    """Runs `scripts/<script>` once per flag list, in one subprocess.

    Returns:
        A list of `(exit status, stdout, stderr)`, one per command.
    """
    result = run_python(
        [os.path.abspath(__file__), script],
        env=env,
        timeout=timeout,
        stdin=json.dumps([list(flags) for flags in commands]),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [tuple(outcome) for outcome in json.loads(result.stdout)]


def _run_one(path, namespace, flags):
    from absl import app
    from absl import flags as absl_flags

    absl_flags.FLAGS.unparse_flags()
    sys.argv = [path, *flags]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            app.run(namespace["main"], argv=sys.argv)
        except SystemExit as exit_:
            # As the interpreter reads `sys.exit(code)`.
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
    return code, stdout.getvalue(), stderr.getvalue()


def main(script):
    commands = json.load(sys.stdin)
    path = os.path.join(SCRIPTS, script)
    # As `python scripts/<script>` does: its folder's modules import.
    sys.path.insert(0, SCRIPTS)
    namespace = runpy.run_path(path, run_name="script_runs")
    results = [_run_one(path, namespace, flags) for flags in commands]
    sys.stdout = sys.__stdout__
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
