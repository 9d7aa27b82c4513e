"""Start the demo's servers as real processes on free loopback ports, wait for health, stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlstack.core import procs
from mlstack.core.errors import MlstackError


def bin_path(name: str) -> str:
    """A console script of this environment (mlstack, mlflow, evidently)."""
    return str(Path(sys.executable).parent / name)


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path


@dataclass
class Services:
    """The processes the demo started; stops them all on exit unless told to keep them."""

    log_dir: Path
    started: list[Service] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: list[str],
        health_path: str,
        port: int,
        env: dict | None = None,
        timeout: float = 180,
    ) -> Service:
        """Launch one service and wait until it answers its health check."""
        service = self.launch(name, args, port, env)
        self.wait_ready(service, health_path, timeout)
        return service

    def launch(self, name: str, args: list[str], port: int, env: dict | None = None) -> Service:
        """Start a service without waiting for it: launch several, then ``wait_ready`` each."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        service = Service(name, f"http://127.0.0.1:{port}", process, log_path)
        self.started.append(service)
        return service

    def wait_ready(self, service: Service, health_path: str, timeout: float = 180) -> None:
        """Poll ``health_path`` until it answers below 500; a service that exits is an error."""
        try:
            procs.wait_for_http(service.url + health_path, timeout, service.process)
        except RuntimeError:
            tail = service.log_path.read_text()[-600:]
            raise MlstackError(
                f"{service.name} exited with {service.process.returncode} on start; "
                f"log {service.log_path}: {tail}"
            ) from None
        except TimeoutError:
            raise MlstackError(
                f"{service.name} did not become healthy within {timeout:.0f}s; see {service.log_path}"
            ) from None

    def stop_one(self, name: str) -> None:
        """SIGTERM one service and wait for it to exit (a graceful stop)."""
        for service in self.started:
            if service.name == name and not procs.stop(service.process, timeout=30, group=True):
                raise MlstackError(f"{name} did not stop within 30 s; see {service.log_path}")

    def stop(self) -> None:
        for service in reversed(self.started):
            if service.process.poll() is None:
                try:
                    os.killpg(service.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for service in self.started:  # all were signalled above: wait for each, kill what hangs
            procs.stop(service.process, timeout=15, group=True)
        self.started.clear()
