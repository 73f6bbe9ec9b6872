"""The OpenAPI schema describes the rules the server enforces, route by route."""

import pytest

SESSION = "/session/{session_id}"
MODEL_WORK = [
    ("post", f"{SESSION}/message"),
    ("post", f"{SESSION}/compact"),
    ("post", f"{SESSION}/generate-title"),
]


@pytest.fixture
async def spec(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(spec: dict):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def codes(spec: dict, method: str, path: str) -> set[str]:
    return set(spec["paths"][path][method]["responses"])


def ref(response: dict) -> str:
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


async def test_tools_items_are_the_registrys_tool_names(client, spec):
    tools = spec["components"]["schemas"]["MessageCreate"]["properties"]["tools"]
    array = next(variant for variant in tools["anyOf"] if variant.get("type") == "array")
    registry = client.app.state.services.registry
    assert array["items"]["enum"] == registry.names()
    assert set(array["items"]["enum"]) == {
        "todowrite",
        "todoread",
        "question",
        "webfetch",
        "websearch",
    }


def test_reasoning_effort_says_which_models_take_it(spec):
    field = spec["components"]["schemas"]["MessageCreate"]["properties"]["reasoning_effort"]
    assert "supports_reasoning" in field["description"] and "400" in field["description"]


def test_generate_title_documents_the_409_without_a_message(spec):
    operation = spec["paths"][f"{SESSION}/generate-title"]["post"]
    assert "no message" in operation["responses"]["409"]["description"]
    assert "409" in operation["description"]


def test_the_schema_states_what_the_validators_enforce(spec):
    schemas = spec["components"]["schemas"]
    content = schemas["MessageCreate"]["properties"]["content"]
    assert content["pattern"] == "^[^\\u0000]*$" and content["minLength"] == 1
    provider = schemas["SessionCreate"]["properties"]["provider_id"]["anyOf"][0]
    assert provider["enum"] == ["anthropic", "openai", "gemini"]
    update = schemas["SessionUpdate"]
    assert [alternative["required"] for alternative in update["anyOf"]] == [
        ["title"],
        ["provider_id"],
        ["model_id"],
    ]


def test_error_responses_are_per_route_and_real(spec):
    assert codes(spec, "get", "/health") == {"200", "503"}  # 503 while shutting down
    assert codes(spec, "get", "/provider") == {"200", "400", "401"}
    assert codes(spec, "get", SESSION) == {"200", "400", "401", "404", "422"}
    assert codes(spec, "delete", SESSION) == {"200", "400", "401", "403", "404", "422"}
    assert codes(spec, "post", f"{SESSION}/message") == {
        *("200", "400", "401", "403", "404", "409", "413", "422", "429", "503")
    }
    for method, path, operation in operations(spec):
        errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
        for code, response in errors.items():
            expected = {"422": "ValidationErrorOut"}.get(code, "ErrorOut")
            if (method, path, code) == ("post", f"{SESSION}/message", "409"):
                expected = "BusyOut"
            if code == "429":
                expected = "QuotaOut"  # {"limit", "used", "resets_at"} too
            if (method, path, code) == ("get", "/health", "503"):
                expected = "HealthOut"  # {"status": "shutting_down"}: still a health answer
            assert ref(response) == expected, (method, path, code)
        if method in ("post", "put", "patch", "delete"):
            assert "403" in errors, (method, path)
        else:
            assert "403" not in errors, (method, path)
            assert "503" not in errors or path == "/health", (method, path)
        if path != "/health":
            assert {"400", "401"} <= set(errors), (method, path)
        assert "502" not in errors or (method, path) in MODEL_WORK, (method, path)


@pytest.mark.parametrize(("method", "path"), MODEL_WORK)
def test_routes_that_start_model_work_document_503_with_retry_after(spec, method, path):
    response = spec["paths"][path][method]["responses"]["503"]
    assert response["headers"]["Retry-After"]["schema"] == {"type": "integer"}


def test_error_models_have_string_details(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["ErrorOut"]["properties"]["detail"]["type"] == "string"
    assert schemas["ErrorOut"]["required"] == ["error", "detail"]
    problem = schemas["ValidationProblem"]["properties"]
    assert set(problem) == {"loc", "msg", "type"}
    assert "HTTPValidationError" not in schemas


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("get", "/provider", None),
        ("get", "/provider/{provider_id}", "ProviderDetail"),
        ("get", "/provider/{provider_id}/model", "ModelList"),
        ("delete", SESSION, "DeletedOut"),
        ("get", "/health", "HealthOut"),
    ],
)
def test_routes_have_response_models(spec, method, path, model):
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    schema = schema["schema"]
    if model is None:
        assert schema["items"]["$ref"].endswith("/ProviderInfo")
    else:
        assert schema["$ref"].endswith(f"/{model}")


def test_patch_session_documents_the_model_fields(spec):
    update = spec["components"]["schemas"]["SessionUpdate"]
    assert set(update["properties"]) == {"title", "provider_id", "model_id"}
    assert "required" not in update


def test_money_fields_are_documented_as_rounded(spec):
    schemas = spec["components"]["schemas"]
    for model, field in [
        ("SessionOut", "total_cost"),
        ("CostOut", "total_cost"),
        ("ModelCostOut", "cost"),
        ("MessageOut", "cost"),
        ("StepFinishPart", "cost"),
    ]:
        assert "1e-10" in schemas[model]["properties"][field]["description"], (model, field)


async def test_delete_returns_its_model(client):
    session_id = (await client.post("/session")).json()["id"]
    response = await client.delete(f"/session/{session_id}")
    assert response.json() == {"id": session_id, "deleted": True}


@pytest.mark.parametrize(
    ("env", "schemes"),
    [
        ({}, None),
        ({"OPENCODE_SERVER_PASSWORD": "pw"}, {"password"}),
        ({"SUPABASE_URL": "https://x.supabase.co"}, {"supabase"}),
        ({"OPENCODE_ADMIN_TOKEN": "a" * 20}, {"admin"}),
    ],
)
def test_the_schema_names_the_credentials_of_the_auth_mode(tmp_path, env, schemes):
    from opencode.api.app import create_app
    from opencode.core.settings import Settings

    settings = Settings(_env_file=None, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", **env)
    spec = create_app(settings).openapi()
    if schemes is None:
        assert "security" not in spec
        return
    assert set(spec["components"]["securitySchemes"]) == schemes
    assert spec["security"] == [{name: []} for name in schemes]
    assert spec["paths"]["/health"]["get"]["security"] == []
