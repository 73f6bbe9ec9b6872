"""``OPENCODE_LOG_LEVEL`` reaches logging through Settings, so a ``.env`` file sets it too."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from opencode.core.settings import Settings


@pytest.fixture(autouse=True)
def no_log_level_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENCODE_LOG_LEVEL", raising=False)


def test_log_level_from_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OPENCODE_LOG_LEVEL=debug\n")

    assert Settings(_env_file=env_file).log_level == "DEBUG"


def test_log_level_defaults_to_info() -> None:
    assert Settings(_env_file=None).log_level == "INFO"


def test_unknown_log_level_is_rejected(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OPENCODE_LOG_LEVEL=loud\n")

    with pytest.raises(ValidationError, match="'loud' is not a log level; use one of .*DEBUG"):
        Settings(_env_file=env_file)


def test_uvicorns_access_log_never_shows_an_access_token(tmp_path: Path) -> None:
    """``uvicorn app:app`` (not our launcher) writes an access log with query strings."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.e2e.server import ROOT, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE_", "SUPABASE_"))}
    env |= {"PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--port",
                str(port),
                "--app-dir",
                str(ROOT),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/health?access_token=tok-very-secret-1234"
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(15)
    text = log.read_text()
    assert "GET /health?" in text  # the request was logged ...
    assert "tok-very-secret-1234" not in text  # ... without its token
