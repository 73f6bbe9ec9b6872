"""``POST /session/{id}/generate-title``: ask a model for a short title from the first message."""

from dataclasses import asdict

from opencode.core.errors import Conflict, UpstreamError
from opencode.core.users import LOCAL_USER_ID
from opencode.events.bus import EventBus
from opencode.llm.complete import complete
from opencode.llm.types import ChatMessage, ModelClient, ModelRequest, ProviderError, StepOutput
from opencode.schemas.sessions import TitleOut
from opencode.services.gate import Gate
from opencode.services.providers import ProviderCatalog
from opencode.services.quota import QuotaService
from opencode.services.records import require_session
from opencode.services.retry import RetryPolicy
from opencode.storage.base import Store

TITLE_PROMPT = (
    "You write titles for conversations. Reply with a title of at most 6 words for the "
    "conversation that starts with the user's message below. Reply with the title only: no "
    "quotes, no punctuation at the end, same language as the message."
)
MAX_TITLE_CHARS = 100
MAX_INPUT_CHARS = 4000
MAX_OUTPUT_CHARS = 20_000  # a model that will not stop is cut off long before the idle timeout


class TitleService:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        catalog: ProviderCatalog,
        models: ModelClient,
        retry: RetryPolicy,
        gate: Gate,
        quota: QuotaService,
        title_model: str | None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._catalog = catalog
        self._models = models
        self._retry = retry
        self._gate = gate
        self._quota = quota
        self._title_model = title_model

    async def generate(self, session_id: str) -> TitleOut:
        self._gate.check()
        session = await require_session(self._store, session_id)
        first, _ = await self._store.list_messages(session_id, limit=1, offset=0, order="asc")
        if not first or not first[0].content.strip():
            raise Conflict("This session has no message yet; send one before generating a title.")
        model = self._catalog.resolve(
            provider_id=None, model_id=None, session_model=self._title_model or session.model
        )
        request = ModelRequest(
            model=model.litellm_model,
            system=TITLE_PROMPT,
            messages=(ChatMessage("user", first[0].content[:MAX_INPUT_CHARS]),),
            api_key=model.api_key,
            api_base=model.api_base,
            max_output_chars=MAX_OUTPUT_CHARS,
        )
        owner = session.user_id or LOCAL_USER_ID  # who pays: the session's owner
        await self._quota.check(owner)
        output = await self._complete(session_id, request, owner, model.ref)
        if output is not None:  # a title's tokens count in the session's cost like a step's
            await self._store.record_step_usage(
                session_id, model=model.ref, usage=asdict(output.usage), cost=output.cost
            )
        title = clean_title(output.text if output else "")
        if not title:
            raise UpstreamError("The model returned an empty title; try again.")
        await self._store.update_session(session_id, title=title)
        self._bus.publish("session.updated", id=session_id, title=title)
        return TitleOut(session_id=session_id, title=title)

    async def _complete(
        self, session_id: str, request: ModelRequest, user_id: str, model: str
    ) -> StepOutput | None:
        def on_retry(attempt: int, error: ProviderError, delay: float) -> None:
            self._bus.publish(
                "session.status",
                session_id=session_id,
                status="retry",
                attempt=attempt,
                delay=round(delay, 3),
                message=error.message,
            )

        client = self._quota.metered(self._retry.client(self._models, on_retry), user_id, model)
        try:
            return await complete(client, request)
        except ProviderError as exc:
            raise UpstreamError(f"The title model failed: {exc.message}") from None


def clean_title(raw: str) -> str:
    """First non-empty line, without quotes, markdown heading marks or a trailing period."""
    line = next((line.strip() for line in raw.splitlines() if line.strip()), "")
    line = line.lstrip("#").strip().strip("\"'`*").strip()
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip()
    return line.rstrip(".").strip()[:MAX_TITLE_CHARS]
