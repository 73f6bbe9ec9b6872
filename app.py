"""Entry point: ``python app.py`` serves on ``$PORT`` (7860); ``uvicorn app:app`` works too."""

from opencode.api.app import create_app
from opencode.core.settings import Settings

settings = Settings()
app = create_app(settings)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="0.0.0.0", port=settings.port, timeout_graceful_shutdown=10)
