"""Run many CLI invocations as real processes cheaply: import the CLI once, fork once per case.

Used by ``test_cli_errors.py``: ``python -m tests.integration.cli_error_driver mlstack|kubectl-model``
reads a JSON list of argv lists on stdin and prints a JSON list of {code, stdout, stderr}. Each
case runs in its own forked process (its own exit, its own stdio), as a user's invocation would.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def _child(main, prog: str, argv: list[str], out_fd: int, err_fd: int) -> None:
    import signal

    signal.alarm(240)  # a case that hangs is killed (SIGALRM) and fails its test, not the suite
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    sys.argv = [prog, *argv]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback here is exactly what the test looks for
        import traceback

        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cases(prog: str, cases: list[list[str]], parallel: int = 4) -> list[dict]:
    import importlib

    if prog == "kubectl-model":
        from mlstack.cli.kubectl_model import main

        heavy = ["mlstack.cli.kubectl_moves", "mlstack.core.rollout", "mlflow"]
    else:
        from mlstack.cli.main import main

        heavy = [
            "kfp",
            "mlstack.pipelines.training",
            "mlstack.pipelines.batch_scoring",
            "mlstack.core.settings_doc",
        ]
    for name in heavy:  # imported once here, not once per forked case (kfp alone takes seconds)
        importlib.import_module(name)
    results: list[dict | None] = [None] * len(cases)
    running: dict[int, tuple[int, object, object]] = {}
    pending = list(enumerate(cases))
    while pending or running:
        while pending and len(running) < parallel:
            index, argv = pending.pop(0)
            out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            pid = os.fork()
            if pid == 0:
                _child(main, prog, argv, out.fileno(), err.fileno())
            running[pid] = (index, out, err)
        pid, status = os.wait()
        index, out, err = running.pop(pid)
        out.seek(0)
        err.seek(0)
        results[index] = {
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }
    return results  # type: ignore[return-value]


if __name__ == "__main__":
    print(json.dumps(run_cases(sys.argv[1], json.loads(sys.stdin.read()))))
