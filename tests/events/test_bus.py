"""The event bus: fan-out, replay from Last-Event-ID, slow subscribers dropped."""

import asyncio

import pytest

from opencode.events.bus import EventBus


async def take(iterator, count):
    return [await anext(iterator) for _ in range(count)]


async def test_fan_out_to_every_subscriber():
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    pending = [asyncio.create_task(take(first, 2)), asyncio.create_task(take(second, 2))]
    await asyncio.sleep(0)
    bus.publish("session.created", id="a")
    bus.publish("session.deleted", id="a")
    for events in await asyncio.gather(*pending):
        assert [(i, e.type, e.properties) for i, e in events] == [
            (1, "session.created", {"id": "a"}),
            (2, "session.deleted", {"id": "a"}),
        ]


async def test_replay_after_last_event_id_without_duplicates():
    bus = EventBus(replay_size=3)
    for n in range(5):
        bus.publish("tick", n=n)
    replaying = bus.subscribe(last_event_id=3)
    got = await take(replaying, 2)
    assert [i for i, _ in got] == [4, 5]
    bus.publish("tick", n=5)
    assert (await take(replaying, 1))[0][0] == 6


async def test_slow_subscriber_is_dropped_not_blocking():
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    started = asyncio.create_task(take(slow, 1))
    await asyncio.sleep(0)
    for n in range(10):
        bus.publish("tick", n=n)  # never blocks
    assert bus.subscriber_count == 0
    assert (await started)[0][0] == 1
    rest = [i for i, _ in [item async for item in slow]]  # ends instead of hanging
    assert rest == [2, 3]  # contiguous: a reconnect from id 3 misses nothing


async def test_close_ends_subscriptions():
    bus = EventBus()
    sub = bus.subscribe()
    waiting = asyncio.create_task(take(sub, 1))
    await asyncio.sleep(0)
    bus.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    assert bus.subscriber_count == 0
