"""How a step reports a user-facing failure through KFP.

KFP shows a failed task's log; the local runner streams it to stdout. A step prints one marker
line before raising, so ``mlstack pipeline run`` can show the reason in one line instead of a
traceback, and the Kubeflow UI log shows the same sentence.
"""

ERROR_MARKER = "mlstack-error: "


class StepFailed(RuntimeError):
    """A step refused to continue (validation or another check); the message says why."""


def fail_step(message: str) -> None:
    """Print the marker line and raise, failing the KFP task."""
    print(f"{ERROR_MARKER}{message}", flush=True)
    raise StepFailed(message)
