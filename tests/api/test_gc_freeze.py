"""The lifespan freezes what start-up made (out of every full collection's walk) and unfreezes it
when the app stops."""

import gc

from opencode.api.app import create_app
from opencode.core.settings import Settings


async def test_startup_objects_are_frozen_for_the_apps_life(tmp_path):
    app = create_app(Settings(_env_file=None, DATABASE_URL=f"sqlite:///{tmp_path / 'gc.db'}"))
    async with app.router.lifespan_context(app):
        # The app's own modules, schemas and cost map: ~100k (LiteLLM, not imported at start-up
        # any more, is frozen after its own import: tests/api/test_lazy_litellm.py).
        assert gc.get_freeze_count() > 50_000
    assert gc.get_freeze_count() == 0
