"""Sessions, their messages, cost and todos."""

from opencode.core.errors import OpencodeError
from opencode.core.ids import new_id, utc_now
from opencode.core.users import Caller
from opencode.events.bus import EventBus
from opencode.schemas.messages import MessagePage
from opencode.schemas.sessions import (
    CostOut,
    DeletedOut,
    ModelCostOut,
    SessionCreate,
    SessionOut,
    SessionUpdate,
    TodoOut,
)
from opencode.services.providers import ProviderCatalog
from opencode.services.records import require_session, session_not_found
from opencode.services.runs import RunManager
from opencode.services.views import message_out, session_out
from opencode.storage.base import Order, SessionRecord, Store

DEFAULT_TITLE = "New session"


class SessionService:
    def __init__(
        self, *, store: Store, bus: EventBus, catalog: ProviderCatalog, runs: RunManager
    ) -> None:
        self._store = store
        self._bus = bus
        self._catalog = catalog
        self._runs = runs

    async def check_access(self, session_id: str, caller: Caller) -> SessionRecord:
        """The session, if the caller may use it; another user's answers 404 exactly like a
        session that does not exist."""
        record = await self._store.get_session(session_id)
        if record is None or not caller.may_see(record.user_id):
            raise session_not_found(session_id)
        self._bus.own(session_id, record.user_id)
        return record

    async def create(self, body: SessionCreate, *, owner: str) -> SessionOut:
        model = None
        if body.provider_id is not None or body.model_id is not None:
            model = self._catalog.resolve(
                provider_id=body.provider_id, model_id=body.model_id, session_model=None
            ).ref
        now = utc_now()
        record = await self._store.create_session(
            SessionRecord(
                id=new_id("ses"),
                title=body.title or DEFAULT_TITLE,
                created_at=now,
                updated_at=now,
                model=model,
                user_id=owner,
            )
        )
        self._bus.own(record.id, record.user_id)
        self._bus.publish("session.created", id=record.id, title=record.title)
        return self._out(record)

    async def get(self, session_id: str) -> SessionOut:
        return self._out(await require_session(self._store, session_id))

    async def page(
        self, *, limit: int, offset: int, owner: str | None
    ) -> tuple[list[SessionOut], int]:
        """A page of ``owner``'s sessions (everyone's for None) and their total."""
        records, total = await self._store.list_sessions(limit=limit, offset=offset, user_id=owner)
        return [self._out(record) for record in records], total

    async def update(self, session_id: str, body: SessionUpdate) -> SessionOut:
        """Rename and/or choose the model later messages use (resolved like a message's
        choice, so a model that would fail every turn is refused here, with 400)."""
        await require_session(self._store, session_id)
        model = None
        if body.changes_model:
            model = self._catalog.resolve(
                provider_id=body.provider_id, model_id=body.model_id, session_model=None
            ).ref
        record = await self._store.update_session(session_id, title=body.title, model=model)
        if record is None:  # deleted meanwhile
            raise session_not_found(session_id)
        self._bus.publish("session.updated", id=record.id, title=record.title, model=record.model)
        return self._out(record)

    async def delete(self, session_id: str) -> DeletedOut:
        if self._runs.is_busy(session_id):  # abort answers 404 for an unknown id itself
            await self._runs.abort(session_id)
        if not await self._store.delete_session(session_id):
            raise session_not_found(session_id)
        self._bus.publish("session.deleted", id=session_id)
        return DeletedOut(id=session_id, deleted=True)

    async def messages(
        self, session_id: str, *, limit: int | None, offset: int, order: Order
    ) -> MessagePage:
        await require_session(self._store, session_id)
        records, total = await self._store.list_messages(
            session_id, limit=limit, offset=offset, order=order
        )
        return MessagePage(
            messages=[message_out(record) for record in records],
            total_count=total,
            limit=limit,
            offset=offset,
        )

    async def cost(self, session_id: str) -> CostOut:
        record = await require_session(self._store, session_id)
        models = await self._store.model_usage(session_id)
        return CostOut(
            session_id=session_id,
            total_cost=record.total_cost,
            **record.usage,
            models=[
                ModelCostOut(model=m.model, cost=m.cost, steps=m.steps, **m.usage) for m in models
            ],
        )

    async def todos(self, session_id: str) -> list[TodoOut]:
        await require_session(self._store, session_id)
        return [TodoOut(**todo) for todo in await self._store.get_todos(session_id)]

    def _out(self, record: SessionRecord) -> SessionOut:
        return session_out(
            record, model=record.model or self._default_model(), busy=self._runs.is_busy(record.id)
        )

    def _default_model(self) -> str | None:
        try:
            return self._catalog.resolve(provider_id=None, model_id=None, session_model=None).ref
        except OpencodeError:
            return None  # no provider configured yet: the session still works for reading
