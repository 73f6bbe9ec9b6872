"""Turning a ``POST /session/{id}/message`` into a run: validated, stored, ready to drive.

``TurnBuilder.build`` resolves the model and tools (every 400/422 comes before anything is
stored), stores the user message and an empty ``running`` assistant message under the id the
caller reserved, announces them, and returns the ``Run`` with the agent loop's ``Turn``.
"""

from opencode.agent.loop import Turn
from opencode.core.errors import BadRequest, OpencodeError
from opencode.core.ids import EventIds
from opencode.core.users import LOCAL_USER_ID
from opencode.events import codex_items
from opencode.events.bus import EventBus
from opencode.llm.types import ChatMessage, ModelClient, ModelRequest
from opencode.schemas.events import MessageStart
from opencode.schemas.messages import MessageCreate
from opencode.services.compaction import Compactor
from opencode.services.providers import ProviderCatalog, ResolvedModel
from opencode.services.quota import QuotaService
from opencode.services.records import new_message, require_session
from opencode.services.run import Run
from opencode.services.run_context import RunContext
from opencode.services.run_items import log_items
from opencode.storage.base import Store
from opencode.tools.registry import ToolRegistry

DEFAULT_SYSTEM_PROMPT = (
    "You are OpenCode, a helpful assistant. Answer clearly and concisely. Use the tools you are "
    "given when they help: keep a todo list for multi-step work, and ask the user a question when "
    "you genuinely need their input to continue."
)


class TurnBuilder:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        catalog: ProviderCatalog,
        registry: ToolRegistry,
        compactor: Compactor,
        quota: QuotaService,
        ids: EventIds,
        max_output_tokens: int | None = None,
        max_step_output_chars: int | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._catalog = catalog
        self._registry = registry
        self._compactor = compactor
        self._quota = quota
        self._ids = ids
        self._max_output_tokens = max_output_tokens
        self._max_step_output_chars = max_step_output_chars

    async def build(
        self, session_id: str, body: MessageCreate, *, message_id: str, client: ModelClient
    ) -> tuple[Run, Turn]:
        """The run (its assistant message stored as ``message_id``) and its turn; ``client`` is
        the run's model client, which compactions during the turn use too."""
        session = await require_session(self._store, session_id)
        model = self._catalog.resolve(
            provider_id=body.provider_id, model_id=body.model_id, session_model=session.model
        )
        try:
            tools = self._registry.select(body.tools)
        except ValueError as exc:
            raise OpencodeError(str(exc), status_code=422) from None
        extra = self._reasoning_options(model, body.reasoning_effort)
        owner = session.user_id or LOCAL_USER_ID  # who pays: the session's owner
        limit = await self._quota.check(owner)  # 429 before anything is stored
        context = await self._compactor.load(session_id)
        user = await self._store.add_message(
            new_message(
                session_id,
                "user",
                "completed",
                parts=[{"type": "text", "text": body.content}],
                content=body.content,
            )
        )
        assistant = await self._store.add_message(
            new_message(
                session_id,
                "assistant",
                "running",
                id=message_id,
                parent_id=user.id,
                model=model.ref,
            )
        )
        if (body.provider_id or body.model_id) and session.model != model.ref:
            await self._store.update_session(session_id, model=model.ref)  # the choice sticks
        run = Run(
            session_id=session_id,
            message_id=assistant.id,
            model=model,
            ids=self._ids,
            turn_id=user.id,
        )
        run.emit(
            MessageStart(
                message_id=assistant.id, parent_id=user.id, session_id=session_id, model=model.ref
            )
        )
        log_items(run.emit, user.id, lambda: codex_items.message_items(user))
        for record in (user, assistant):
            self._bus.publish(
                "message.created", session_id=session_id, id=record.id, role=record.role
            )
        request = ModelRequest(
            model=model.litellm_model,
            messages=(*context.messages(), ChatMessage("user", body.content)),
            system=body.system or DEFAULT_SYSTEM_PROMPT,
            tools=self._registry.specs(tools),
            api_key=model.api_key,
            api_base=model.api_base,
            max_tokens=self._max_output_tokens,
            max_output_chars=self._max_step_output_chars,
            extra=extra,
        )
        keeper = RunContext(
            self._compactor,
            model=model,
            context=context,
            user_message=user,
            user_id=owner,
            emit=run.emit,
            client=client,
        )
        turn = Turn(
            request=request,
            tools=tools,
            max_steps=body.max_steps,
            context=keeper,
            meter=self._quota.meter(owner, model.ref, unlimited=not limit),
        )
        return run, turn

    def _reasoning_options(self, model: ResolvedModel, effort: str | None) -> dict[str, str]:
        if effort is None:
            return {}
        info = self._catalog.find_model(model.provider_id, model.model_id)
        if info is not None and not info.supports_reasoning:
            raise BadRequest(
                f"Model {model.ref} does not support reasoning; drop reasoning_effort or pick a "
                f"model with supports_reasoning in GET /provider/{model.provider_id}/model."
            )
        return {"reasoning_effort": effort}
