"""The in-process fan-out: bounded mailboxes that keep each job's newest state."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

from server.hub import FANOUT_BURST, Delivery, EventHub, Subscription


def raw_event(
    job_id: str, seq: int, organization_id: str = "org", kind: str = "progress"
) -> dict[str, object]:
    return {"type": kind, "job_id": job_id, "organization_id": organization_id, "seq": seq}


def event(job_id: str, seq: int, organization_id: str = "org", kind: str = "progress") -> Delivery:
    body = raw_event(job_id, seq, organization_id, kind)
    return Delivery(body, json.dumps(body))


async def test_a_slow_reader_holds_only_the_newest_event_per_job() -> None:
    subscription = Subscription("org", None)
    for seq in range(1, 10_001):
        subscription.offer(event("a", seq))
    subscription.offer(event("b", 3))
    events, resync = await subscription.next()
    assert [(d.event["job_id"], d.seq) for d in events] == [("b", 3), ("a", 10_000)]
    assert resync is False


async def test_an_older_event_never_replaces_a_newer_one() -> None:
    subscription = Subscription("org", None)
    subscription.offer(event("a", 7, kind="finished"))
    subscription.offer(event("a", 5))
    events, _ = await subscription.next()
    assert [(d.event["type"], d.seq) for d in events] == [("finished", 7)]


async def test_a_job_subscription_ignores_other_jobs() -> None:
    subscription = Subscription("org", "a")
    subscription.offer(event("b", 1))
    subscription.offer(event("a", 1))
    events, _ = await subscription.next()
    assert [d.event["job_id"] for d in events] == ["a"]


async def test_a_resync_request_wakes_the_reader_with_nothing_else() -> None:
    subscription = Subscription("org", None)
    subscription.request_resync()
    assert await subscription.next() == ([], True)


async def test_the_hub_delivers_only_to_the_events_organization() -> None:
    hub = EventHub("redis://unused", "prefix")
    mine, theirs = uuid4(), uuid4()
    async with hub.subscribe(mine) as watching_mine, hub.subscribe(theirs) as watching_theirs:
        hub.dispatch(json.dumps(raw_event("a", 1, organization_id=str(mine))))
        hub.dispatch(b"not json")
        events, _ = await watching_mine.next()
        assert [d.event["job_id"] for d in events] == ["a"]
        assert watching_theirs.pending == 0
    assert hub.subscriber_count == 0


async def test_a_burst_of_events_is_coalesced_to_the_allowed_rate_ending_with_the_newest() -> None:
    hub = EventHub("redis://unused", "prefix")
    organization = uuid4()
    async with hub.subscribe(organization) as watching:
        for seq in range(1, 11):
            hub.dispatch(json.dumps(raw_event("a", seq, organization_id=str(organization))))
        first, _ = await watching.next()
        later, _ = await watching.next()  # released by the hub's timer, about 0.1 s later
    assert [d.seq for d in first] == [int(FANOUT_BURST)], "the burst allowance, then the newest wins"
    assert [d.seq for d in later] == [10]


async def test_a_finished_event_is_never_held_back() -> None:
    hub = EventHub("redis://unused", "prefix")
    organization = str(uuid4())
    async with hub.subscribe(UUID(organization)) as watching:
        hub.dispatch(json.dumps(raw_event("a", 1, organization_id=organization)))
        await watching.next()
        hub.dispatch(json.dumps(raw_event("a", 2, organization_id=organization)))
        hub.dispatch(json.dumps(raw_event("a", 3, organization_id=organization, kind="finished")))
        events, _ = await watching.next()
    assert [(d.event["type"], d.seq) for d in events] == [("finished", 3)]
