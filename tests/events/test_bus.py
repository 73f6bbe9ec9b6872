"""The event bus: fan-out, replay from Last-Event-ID, resync when it cannot, slow subscribers
dropped, a final event at shutdown."""

import asyncio

import pytest

from opencode.events.bus import EventBus


async def take(iterator, count):
    return [await anext(iterator) for _ in range(count)]


async def test_fan_out_to_every_subscriber_with_growing_ids():
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    pending = [asyncio.create_task(take(first, 2)), asyncio.create_task(take(second, 2))]
    await asyncio.sleep(0)
    ids = [bus.publish("session.created", id="a"), bus.publish("session.deleted", id="a")]
    assert ids[0] < ids[1]
    for events in await asyncio.gather(*pending):
        assert [(i, e.type, e.properties) for i, e in events] == [
            (ids[0], "session.created", {"id": "a"}),
            (ids[1], "session.deleted", {"id": "a"}),
        ]


def test_ids_only_grow_across_restarts():
    before = EventBus()
    last = max(before.publish("tick") for _ in range(1000))  # faster than the clock ticks
    after = EventBus()  # a new process
    assert after.publish("tick") > last


async def test_replay_after_last_event_id_without_duplicates():
    bus = EventBus(replay_size=3)
    ids = [bus.publish("tick", n=n) for n in range(5)]
    replaying = bus.subscribe(last_event_id=ids[2])
    got = await take(replaying, 2)
    assert [i for i, _ in got] == ids[3:]
    newest = bus.publish("tick", n=5)
    assert (await take(replaying, 1))[0][0] == newest


@pytest.mark.parametrize("case", ["too_old", "before_restart", "from_the_future"])
async def test_an_id_that_cannot_be_replayed_gets_a_resync_first(case):
    earlier = EventBus()
    stale = earlier.publish("tick")
    bus = EventBus(replay_size=3)
    ids = [bus.publish("tick", n=n) for n in range(5)]
    last_event_id = {
        "too_old": ids[0],  # ids[1] fell out of the buffer: a gap the client must know about
        "before_restart": stale,
        "from_the_future": ids[-1] + 10**9,
    }[case]
    replaying = bus.subscribe(last_event_id=last_event_id)
    (resync_id, resync), *replayed = await take(
        replaying, 1 + (3 if case != "from_the_future" else 0)
    )
    assert resync_id is None and resync.type == "server.resync"
    assert resync.properties["reason"]
    if case != "from_the_future":
        assert [i for i, _ in replayed] == ids[2:]


async def test_an_id_the_buffer_still_covers_gets_no_resync():
    bus = EventBus(replay_size=3)
    ids = [bus.publish("tick", n=n) for n in range(5)]
    replaying = bus.subscribe(last_event_id=ids[1])  # ids[2:] are all buffered
    assert [i for i, _ in await take(replaying, 3)] == ids[2:]


async def test_slow_subscriber_is_dropped_not_blocking():
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    started = asyncio.create_task(take(slow, 1))
    await asyncio.sleep(0)
    ids = [bus.publish("tick", n=n) for n in range(10)]  # never blocks
    assert bus.subscriber_count == 0
    assert (await started)[0][0] == ids[0]
    rest = [i for i, _ in [item async for item in slow]]  # ends instead of hanging
    assert rest == ids[1:3]  # contiguous: a reconnect from the last id misses nothing


async def test_close_ends_subscriptions_with_a_final_shutdown_event():
    bus = EventBus()
    sub = bus.subscribe()
    waiting = asyncio.create_task(take(sub, 1))
    await asyncio.sleep(0)
    bus.close()
    [(_, event)] = await asyncio.wait_for(waiting, 1)
    assert event.type == "server.shutdown"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(sub), 1)
    assert bus.subscriber_count == 0
    # a subscriber arriving after the close hears the same and ends
    late = [event.type async for _, event in bus.subscribe()]
    assert late == ["server.shutdown"]


async def test_a_viewer_receives_only_its_own_sessions_events_and_server_ones():
    bus = EventBus()
    bus.own("ses_a", "user-a")
    bus.own("ses_b", "user-b")
    mine, admin = bus.subscribe(viewer="user-a"), bus.subscribe()
    pending = [asyncio.create_task(take(mine, 3)), asyncio.create_task(take(admin, 5))]
    await asyncio.sleep(0)
    bus.publish("session.created", id="ses_a")
    bus.publish("message.part.delta", session_id="ses_b", delta="secret")
    bus.publish("session.updated", id="ses_unknown")  # owner unknown: only see-all viewers
    bus.publish("todo.updated", session_id="ses_a", todos=[])
    bus.publish("server.shutdown")
    seen, everything = await asyncio.gather(*pending)
    assert [(e.type, e.properties.get("session_id", e.properties.get("id"))) for _, e in seen] == [
        ("session.created", "ses_a"),
        ("todo.updated", "ses_a"),
        ("server.shutdown", None),
    ]
    assert len(everything) == 5


async def test_replay_for_a_viewer_skips_other_users_events():
    bus = EventBus()
    bus.own("ses_a", "user-a")
    bus.own("ses_b", "user-b")
    first = bus.publish("session.created", id="ses_a")
    bus.publish("session.created", id="ses_b")
    bus.publish("session.updated", id="ses_a")
    replay = bus.subscribe(last_event_id=first, viewer="user-b")
    got = await take(replay, 1)
    assert [e.properties["id"] for _, e in got] == ["ses_b"]


async def test_another_users_burst_never_fills_a_viewers_queue():
    bus = EventBus(queue_size=5)
    bus.own("ses_a", "user-a")
    bus.own("ses_b", "user-b")
    quiet = bus.subscribe(viewer="user-a")
    waiting = asyncio.create_task(take(quiet, 1))
    await asyncio.sleep(0)
    for n in range(50):  # would drop a subscriber that received them
        bus.publish("message.part.delta", session_id="ses_b", n=n)
    bus.publish("session.updated", id="ses_a")
    [(_, event)] = await waiting
    assert event.properties == {"id": "ses_a"}
