"""Entry point: ``python app.py`` serves on ``$OPENCODE_HOST:$PORT`` (127.0.0.1:7860).

``python app.py`` runs uvicorn through ``opencode.api.server.serve``: request head and body
timeouts, a connection cap sized to the file descriptor limit, no access log. ``uvicorn
app:app`` still works, but with uvicorn's plain protocol and none of those guards.
"""

from opencode.api.app import create_app
from opencode.api.server import serve
from opencode.core.settings import load_settings

settings = load_settings()
app = create_app(settings)

if __name__ == "__main__":
    serve(app, settings)
