"""Entry point: ``python app.py`` serves on ``$PORT`` (7860); ``uvicorn app:app`` works too."""

import opencode.core.env  # noqa: F401  (LiteLLM must not reach the internet at import)
from opencode.api.app import create_app

app = create_app()

if __name__ == "__main__":
    import uvicorn

    from opencode.core.settings import Settings

    uvicorn.run(app, host="0.0.0.0", port=Settings().port, timeout_graceful_shutdown=10)
