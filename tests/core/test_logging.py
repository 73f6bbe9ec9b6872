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
