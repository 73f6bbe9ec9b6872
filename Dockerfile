# Hugging Face Space (sdk: docker, app_port: 7860). Runs as uid 1000, as Spaces require.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=7860 \
    OPENCODE_HOST=0.0.0.0

RUN useradd --create-home --uid 1000 user \
    && install -d -o 1000 -g 1000 /home/user/app /home/user/app/data
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN pip install --user -r requirements.txt

COPY --chown=user app.py .
COPY --chown=user opencode ./opencode
# the Postgres schema, applied at startup when DATABASE_URL is a postgresql:// URL
COPY --chown=user supabase ./supabase
# Bytecode now, not at every container start (a fresh container would compile all of it
# before answering /health: ~0.1 s of a start-up that takes ~1 s).
RUN python -m compileall -q app.py opencode

# Without DATABASE_URL (or SUPABASE_URL + SUPABASE_KEY) SQLite lives in ./data/opencode.db,
# i.e. /home/user/app/data; set DATABASE_URL=sqlite:////data/opencode.db for a Space's
# persistent storage. Not set here, so that SUPABASE_URL + SUPABASE_KEY can choose Supabase.
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health')"
CMD ["python", "app.py"]
