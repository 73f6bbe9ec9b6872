"""``GET /tool`` through the real app (in-process): the tool list and the active search backend."""

import jsonschema
import pytest

from opencode.core.errors import OpencodeError
from tests.fakes.search import SEARCH_ENV


@pytest.fixture(autouse=True)
def no_search_env(monkeypatch):
    for name in SEARCH_ENV:
        monkeypatch.delenv(name, raising=False)


async def test_tool_list_with_the_default_search_backend(make_client):
    async with make_client() as client:
        response = await client.get("/tool")
    assert response.status_code == 200
    body = response.json()
    assert body["search"] == {"provider": "duckduckgo", "configured_by": "default"}
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert {"todowrite", "todoread", "question", "websearch"} <= set(tools)
    websearch = tools["websearch"]
    assert websearch["description"].startswith("Search the web.")
    assert websearch["parameters"]["required"] == ["query"]
    assert websearch["parameters"]["properties"]["max_results"]["maximum"] == 10
    for tool in body["tools"]:
        assert tool["description"] and '"title"' not in str(tool["parameters"])
        jsonschema.Draft202012Validator.check_schema(tool["parameters"])


@pytest.mark.parametrize(
    "env,expected",
    [
        (
            {"TAVILY_API_KEY": "tvly-test", "BRAVE_API_KEY": "b"},
            {"provider": "tavily", "configured_by": "TAVILY_API_KEY"},
        ),
        (
            {"OPENCODE_SEARCH_PROVIDER": "SearXNG", "SEARXNG_URL": "http://127.0.0.1:9"},
            {"provider": "searxng", "configured_by": "OPENCODE_SEARCH_PROVIDER"},
        ),
    ],
)
async def test_tool_list_shows_the_configured_search_backend(make_client, env, expected):
    async with make_client(**env) as client:
        body = (await client.get("/tool")).json()
    assert body["search"] == expected
    assert "tvly-test" not in str(body)  # keys are never echoed


async def test_explicit_backend_without_its_key_stops_startup(make_client):
    with pytest.raises(OpencodeError, match="OPENCODE_SEARCH_PROVIDER=brave needs BRAVE_API_KEY"):
        async with make_client(OPENCODE_SEARCH_PROVIDER="brave"):
            pass


async def test_tool_route_is_in_the_openapi_schema(make_client):
    async with make_client() as client:
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/tool"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ToolList"}
    search = spec["components"]["schemas"]["SearchBackendInfo"]["properties"]["provider"]
    assert search["enum"] == ["tavily", "brave", "exa", "searxng", "duckduckgo"]
