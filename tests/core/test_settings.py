"""Settings: the auth mode's defaults and the one-line exit for invalid settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from opencode.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "none"),
        ({"OPENCODE_SERVER_PASSWORD": "pw"}, "password"),
        ({"SUPABASE_URL": "https://x.supabase.co"}, "supabase"),
        ({"SUPABASE_URL": "https://x.supabase.co", "OPENCODE_SERVER_PASSWORD": "pw"}, "password"),
        ({"SUPABASE_URL": "https://x.supabase.co", "OPENCODE_AUTH": "none"}, "none"),
        ({"SUPABASE_URL": "https://x.supabase.co", "OPENCODE_AUTH": "supabase"}, "supabase"),
    ],
)
def test_auth_mode_defaults(env, mode):
    assert Settings(_env_file=None, **env).auth_mode == mode


@pytest.mark.parametrize(
    "env",
    [
        {"OPENCODE_AUTH": "supabase"},  # no SUPABASE_URL to verify tokens against
        {"OPENCODE_AUTH": "password"},  # no password
        {"OPENCODE_AUTH": "jwt"},
        {"OPENCODE_ADMIN_TOKEN": "short"},
        {"OPENCODE_DAILY_TOKEN_LIMIT": "-1"},
    ],
)
def test_incomplete_auth_settings_are_refused(env):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **env)


def test_the_server_exits_with_one_line_per_bad_setting(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE_", "SUPABASE_"))}
    env |= {"OPENCODE_AUTH": "supabase", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "opencode: OPENCODE_AUTH=supabase needs SUPABASE_URL (its /auth/v1 issues the tokens)"
    )
