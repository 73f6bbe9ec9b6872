"""Run the real server (``python app.py``, the production launcher) in a subprocess on loopback."""

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``rlimit_nofile`` sets the server's soft and hard RLIMIT_NOFILE (the launcher raises the
    soft one to the hard one, so both are set)."""

    def __init__(
        self, workdir: Path, env: dict[str, str], rlimit_nofile: int | None = None
    ) -> None:
        self.workdir = workdir
        self.env = env
        self.rlimit_nofile = rlimit_nofile
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.endswith(("_API_KEY", "_API_BASE", "_BASE_URL"))
            and not key.startswith("OPENCODE_")
        }
        env.update(self.env)
        env.update(PYTHONPATH=str(ROOT), PORT=str(self.port), OPENCODE_HOST="127.0.0.1")
        log = self.log_path.open("ab")
        # cwd is a temp dir so a developer's .env is never read by tests
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_fds if self.rlimit_nofile is not None else None,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def _limit_fds(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.rlimit_nofile, self.rlimit_nofile))

    def kill(self) -> None:
        """kill -9: no shutdown handlers run."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
