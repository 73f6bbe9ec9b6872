"""The README's Python example runs as written against the real server."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes.provider import Reply

pytestmark = pytest.mark.timeout(90)
README = Path(__file__).resolve().parents[2] / "README.md"


def example_code() -> str:
    section = README.read_text().split("## Example Usage", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_as_written(fake, server, tmp_path):
    fake.script(Reply(text="I can help with many things."))
    code = example_code().replace("http://localhost:7860", server.url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('{"type":"message_start"')
    assert any('"type":"done"' in line for line in lines)
    assert "Total: 2, Showing: 2" in lines
    assert re.match(r"Total cost: \$0\.\d{4}", lines[-1])


def test_readme_documents_every_route(fake, server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    readme = README.read_text()
    for path, methods in spec["paths"].items():
        for method in methods:
            documented = f"`{method.upper()} {path}".replace("{session_id}", "{id}")
            documented = documented.replace("{provider_id}", "{id}").replace(
                "{question_id}", "{id}"
            )
            assert documented in readme, f"{method.upper()} {path} is not in the README"


def test_ci_runs_the_readmes_test_command():
    section = README.read_text().split("Run every check", 1)[1]
    command = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1).strip()
    ci_script = README.parent / ".ci" / "run"
    assert ci_script.read_text().rstrip().splitlines()[-1] == command
