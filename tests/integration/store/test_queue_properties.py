"""The queue against a model: random enqueues, claims, completions, cancels and recoveries.

A Hypothesis state machine drives a :class:`Store` on in-memory SQLite and a
plain-Python model of the queue side by side. Every claim is compared with an
independent oracle (eligible queued runs sorted by rank then id, picked greedily
while their group, API and pair have room); after every step the database must
match the model and the mutual-exclusion limits must hold.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from store_helpers import worker
from synchestra.core.claims import ClaimLimits
from synchestra.core.clock import FakeClock
from synchestra.core.models import Enqueued, Mode, Outcome, Run, RunRequest, RunState
from synchestra.store import Store

T = TypeVar("T")

AGING = timedelta(minutes=2)
LEASE = timedelta(minutes=5)
GROUP_MAX = {"g1": 1, "g2": 2}
API_CAP = {"a1": 1, "a2": 3}
SOURCES = ["s1", "s2", "s3"]
TARGETS: list[str | None] = [None, "t1", "t2", "t3", "t4"]
OWNERS = ["w1", "w2"]
REQUESTS = st.builds(
    RunRequest,
    source=st.sampled_from(SOURCES),
    target=st.sampled_from(TARGETS),
    mode=st.sampled_from(list(Mode)),
    priority=st.integers(-2, 5),
    group=st.sampled_from([None, "g1", "g2"]),
    api=st.sampled_from([None, "a1", "a2"]),
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


@dataclass
class ModelRun:
    id: int
    source: str
    target: str | None
    mode: Mode
    priority: int
    group: str | None
    api: str | None
    queued_at: datetime
    not_before: datetime
    state: RunState = RunState.QUEUED
    attempts: int = 0
    owner: str | None = None
    cancel_requested: bool = False

    @property
    def pair(self) -> tuple[str, str | None]:
        return (self.source, self.target)

    @property
    def sync(self) -> tuple[str, str | None, Mode]:
        return (self.source, self.target, self.mode)

    def rank(self) -> int:
        """One priority level per ``AGING`` waited; integer maths, unlike the store's."""
        return self.priority * (AGING // MILLISECOND) - (self.queued_at - EPOCH) // MILLISECOND


def recovery_request(run: ModelRun) -> RunRequest:
    """What the store asks for when it queues an interrupted run again."""
    return RunRequest(
        run.source, run.target, run.mode, run.priority, run.group, run.api, trigger="recovery"
    )


def oracle_claim(
    runs: list[ModelRun], now: datetime, capacity: int, saturated: frozenset[str]
) -> list[int]:
    """What a claim must pick: best rank first, then id, whenever there is room."""
    running = [r for r in runs if r.state is RunState.RUNNING]
    groups = Counter(r.group for r in running if r.group is not None)
    apis = Counter(r.api for r in running if r.api is not None)
    pairs = {r.pair for r in running}
    eligible = sorted(
        (r for r in runs if r.state is RunState.QUEUED and r.not_before <= now),
        key=lambda r: (-r.rank(), r.id),
    )
    picked: list[int] = []
    for run in eligible:
        if len(picked) >= capacity:
            break
        if run.pair in pairs:
            continue
        if run.group is not None and groups[run.group] >= GROUP_MAX[run.group]:
            continue
        if run.api is not None and (run.api in saturated or apis[run.api] >= API_CAP[run.api]):
            continue
        picked.append(run.id)
        pairs.add(run.pair)
        if run.group is not None:
            groups[run.group] += 1
        if run.api is not None:
            apis[run.api] += 1
    return picked


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        self.store = self.runner.run(
            Store.open("sqlite:///:memory:", aging=AGING, database_clock=self.clock)
        )
        self.model: dict[int, ModelRun] = {}
        # The model's processes: when each last renewed, and which were declared dead.
        self.beats = {owner: self.clock.now() for owner in OWNERS}
        self.dead: set[str] = set()
        for owner in OWNERS:
            self.block_on(self.store.register_worker(worker(owner)))

    def teardown(self) -> None:
        try:
            self.runner.run(self.store.close())
        finally:
            self.runner.close()

    def block_on(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    # --- model helpers ---------------------------------------------------------

    def in_state(self, state: RunState) -> list[ModelRun]:
        return sorted((r for r in self.model.values() if r.state is state), key=lambda r: r.id)

    def queued_for(self, sync: tuple[str, str | None, Mode]) -> ModelRun | None:
        found = [r for r in self.in_state(RunState.QUEUED) if r.sync == sync]
        assert len(found) <= 1
        return found[0] if found else None

    def expect_enqueue(self, request: RunRequest, answer: Enqueued, now: datetime) -> None:
        existing = self.queued_for((request.source, request.target, request.mode))
        if existing is not None:
            assert answer.deduplicated
            assert answer.run.id == existing.id
            existing.priority = max(existing.priority, request.priority)
            if existing.attempts == 0:  # a fresh run is brought forward; a retry keeps waiting
                existing.not_before = min(existing.not_before, request.not_before or now)
        else:
            assert not answer.deduplicated
            assert answer.run.id not in self.model
            self.model[answer.run.id] = ModelRun(
                id=answer.run.id,
                source=request.source,
                target=request.target,
                mode=request.mode,
                priority=request.priority,
                group=request.group,
                api=request.api,
                queued_at=now,
                not_before=now,
            )
            assert answer.run.trigger == request.trigger
        expected = self.model[answer.run.id]
        assert answer.run.state is RunState.QUEUED
        assert (answer.run.source, answer.run.target, answer.run.mode) == expected.sync
        assert answer.run.priority == expected.priority

    def expect_claim(self, claimed: list[Run], expected: list[int], owner: str) -> None:
        assert [r.id for r in claimed] == expected
        self.clock.now()
        for run in claimed:
            model = self.model[run.id]
            model.state = RunState.RUNNING
            model.attempts += 1
            model.owner = owner
            assert run.state is RunState.RUNNING
            assert run.attempts == model.attempts

    def fetch(self, run_id: int) -> Run:
        (run,) = self.block_on(self.store.get_runs([run_id]))
        return run

    # --- rules -------------------------------------------------------------------

    @initialize(requests=st.lists(REQUESTS, max_size=8))
    def fill(self, requests: list[RunRequest]) -> None:
        """Start with some queued work, so that early claims have a choice."""
        for request in requests:
            self.enqueue(request)

    @rule(request=REQUESTS)
    def enqueue(self, request: RunRequest) -> None:
        now = self.clock.now()
        (answer,) = self.block_on(self.store.enqueue([request], now))
        self.expect_enqueue(request, answer, now)

    @precondition(lambda self: bool(self.model))
    @rule(index=st.integers(0, 50), priority=st.integers(-2, 5), of_running=st.booleans())
    def enqueue_again(self, index: int, priority: int, of_running: bool) -> None:
        """Ask again for the sync of an existing run: dedup, follow-ups, merges."""
        pool = self.in_state(RunState.RUNNING) if of_running else []
        pool = pool or sorted(self.model.values(), key=lambda r: r.id)
        model = pool[index % len(pool)]
        now = self.clock.now()
        request = RunRequest(
            model.source, model.target, model.mode, priority, model.group, model.api
        )
        (answer,) = self.block_on(self.store.enqueue([request], now))
        self.expect_enqueue(request, answer, now)

    @rule(
        capacity=st.integers(1, 3),
        saturated=st.frozensets(st.sampled_from(["a1", "a2"])),
        owner=st.sampled_from(OWNERS),
    )
    def claim(self, capacity: int, saturated: frozenset[str], owner: str) -> None:
        """Any process claims (a dead one's claims are orphans at the next recovery)."""
        now = self.clock.now()
        expected = oracle_claim(list(self.model.values()), now, capacity, saturated)
        turn = self.block_on(
            self.store.complete_and_claim(
                [],
                now=now,
                capacity=capacity,
                limits=ClaimLimits(GROUP_MAX, API_CAP, saturated),
                owner=owner,
            )
        )
        assert turn.merged == []
        assert turn.requeued == []
        self.expect_claim([c.run for c in turn.claimed], expected, owner)

    @precondition(lambda self: bool(self.in_state(RunState.RUNNING)))
    @rule(
        index=st.integers(0, 20),
        ending=st.sampled_from(["succeeded", "failed", "retry", "interrupted"]),
        delay=st.integers(1, 600),
        capacity=st.integers(0, 3),
    )
    def finish(self, index: int, ending: str, delay: int, capacity: int) -> None:
        """End a running attempt, optionally claiming in the same transaction."""
        running = self.in_state(RunState.RUNNING)
        model = running[index % len(running)]
        now = self.clock.now()
        run = self.fetch(model.id)
        retry_at = now + timedelta(seconds=delay) if ending == "retry" else None
        state = RunState.FAILED if ending == "retry" else RunState(ending)
        outcome = Outcome(run=run, state=state, finished_at=now, error="boom", retry_at=retry_at)

        expected_merged: list[tuple[int, int]] = []
        ends_cancelled = model.cancel_requested and state is not RunState.SUCCEEDED
        ends_cancelled = ends_cancelled and (retry_at is not None or state is RunState.INTERRUPTED)
        follow_up = self.queued_for(model.sync) if retry_at is not None else None
        if ends_cancelled:  # asked to cancel: neither retried nor queued again
            model.state = RunState.CANCELLED
        elif retry_at is not None:
            if follow_up is not None:  # absorbed, handing over a higher priority
                follow_up.state = RunState.CANCELLED
                expected_merged.append((follow_up.id, model.id))
                model.priority = max(model.priority, follow_up.priority)
            model.state = RunState.QUEUED
            model.not_before = retry_at
        else:
            model.state = state
        model.owner = None

        owner = OWNERS[0]
        turn = self.block_on(
            self.store.complete_and_claim(
                [outcome],
                now=now,
                capacity=capacity,
                limits=ClaimLimits(GROUP_MAX, API_CAP),
                owner=owner,
            )
        )
        assert turn.merged == expected_merged
        assert turn.cancelled == ([model.id] if ends_cancelled else [])
        if state is RunState.INTERRUPTED and not ends_cancelled:
            # Queued again in the same transaction, before the claim.
            (again,) = turn.requeued
            self.expect_enqueue(recovery_request(model), again, now)
        else:
            assert turn.requeued == []
        # The claim sees the completed outcome: compute its expected picks on the updated model.
        expected = oracle_claim(list(self.model.values()), now, capacity, frozenset())
        self.expect_claim([c.run for c in turn.claimed], expected, owner)

    @precondition(
        lambda self: bool(self.in_state(RunState.QUEUED) or self.in_state(RunState.RUNNING))
    )
    @rule(index=st.integers(0, 20))
    def cancel(self, index: int) -> None:
        candidates = self.in_state(RunState.QUEUED) + self.in_state(RunState.RUNNING)
        model = candidates[index % len(candidates)]
        answer = self.block_on(self.store.cancel(model.id, self.clock.now()))
        assert answer is not None
        if model.state is RunState.QUEUED:
            model.state = RunState.CANCELLED
        else:
            model.cancel_requested = True
        assert answer.state is model.state

    @rule(owner=st.sampled_from(OWNERS))
    def heartbeat(self, owner: str) -> None:
        beat = self.block_on(self.store.heartbeat(owner, running=0, lease=LEASE, roles=("worker",)))
        assert beat.alive is (owner not in self.dead)
        if beat.alive:
            self.beats[owner] = self.clock.now()

    @rule(me=st.sampled_from(["observer", *OWNERS]))
    def recover(self, me: str) -> None:
        """Processes silent for a lease are declared dead; no live process owns their runs."""
        now = self.clock.now()
        self.dead |= {o for o, beat in self.beats.items() if o != me and beat < now - LEASE}
        orphans = {r.id for r in self.in_state(RunState.RUNNING) if r.owner in self.dead}
        recovered = self.block_on(self.store.recover(me, lease=LEASE, gone=lambda _: False))
        assert {old.id for old, _ in recovered} == orphans
        for old, again in recovered:
            model = self.model[old.id]
            if model.cancel_requested:  # a cancelled sync is not run again after a crash
                assert again is None
                model.state = RunState.CANCELLED
                continue
            model.state = RunState.INTERRUPTED
            assert again is not None
            self.expect_enqueue(recovery_request(model), again, now)

    @rule(seconds=st.integers(1, 900))
    def advance(self, seconds: int) -> None:
        self.clock.set(self.clock.now() + timedelta(seconds=seconds))

    # --- invariants --------------------------------------------------------------

    @invariant()
    def database_matches_model_and_limits(self) -> None:
        runs = self.block_on(self.store.list_runs(limit=10_000))
        assert {r.id for r in runs} == set(self.model)
        for run in runs:
            model = self.model[run.id]
            assert (run.source, run.target, run.mode) == model.sync
            assert run.state is model.state, (run, model)
            assert (run.priority, run.attempts) == (model.priority, model.attempts)
            if run.state is RunState.QUEUED:
                assert run.not_before == model.not_before
        running = [r for r in runs if r.state is RunState.RUNNING]
        for group, count in Counter(r.group for r in running if r.group).items():
            assert count <= GROUP_MAX[group], group
        for api, count in Counter(r.api for r in running if r.api).items():
            assert count <= API_CAP[api], api
        assert all(n == 1 for n in Counter(r.pair for r in running).values())
        queued = Counter((r.source, r.target, r.mode) for r in runs if r.state is RunState.QUEUED)
        assert all(n == 1 for n in queued.values())


def test_queue_matches_model() -> None:
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None, database=None),
    )
