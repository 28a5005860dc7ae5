"""Activity retries, backoff, non-retryable errors and start_to_close timeouts."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import ActivityError, ApplicationError, RetryPolicy, activity, workflow

attempts: dict[str, list[float]] = {}


def _note(key: str) -> int:
    attempts.setdefault(key, []).append(time.monotonic())
    return len(attempts[key])


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff=2.0))
async def flaky(key: str) -> str:
    n = _note(key)
    if n <= 2:
        raise ConnectionError(f"attempt {n} failed")
    assert activity.info().attempt == n
    return f"ok after {n}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10)))
def refuses(key: str) -> str:
    _note(key)
    raise ApplicationError("card declined", non_retryable=True, details={"code": 51})


@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), non_retryable=(KeyError,))
)
def bad_key(key: str) -> str:
    _note(key)
    raise KeyError(key)


@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), non_retryable=("CardDeclined",))
)
def declined(key: str) -> str:
    _note(key)
    raise ApplicationError("card declined", type="CardDeclined")


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3))
def always_fails(key: str) -> str:
    _note(key)
    raise RuntimeError("still broken")


@activity.defn(
    retry=RetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=2),
    start_to_close_timeout=timedelta(milliseconds=200),
)
async def hangs(key: str) -> str:
    _note(key)
    await asyncio.sleep(30)
    return "never"


@workflow.defn
async def call(name: str, key: str) -> str:
    fn = {
        "flaky": flaky,
        "refuses": refuses,
        "bad_key": bad_key,
        "declined": declined,
        "always_fails": always_fails,
        "hangs": hangs,
        "uncapped": uncapped,
    }[name]
    return str(await fn(key))


@activity.defn(
    retry=RetryPolicy(
        initial_interval=timedelta(milliseconds=10), max_interval=timedelta.max, max_attempts=3
    )
)
def uncapped(key: str) -> str:
    _note(key)
    raise RuntimeError("still broken")


ALL = [flaky, refuses, bad_key, declined, always_fails, hangs, uncapped]


async def test_fails_twice_then_succeeds_with_configured_backoff(client: perdure.Client) -> None:
    async with fast_worker(client, [call], ALL):
        assert await client.execute(call, "flaky", "k1", timeout=20) == "ok after 3"
    times = attempts["k1"]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 100 ms then 200 ms (initial_interval * backoff**n), never sooner.
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps
    assert gaps[1] > gaps[0]


async def test_the_final_event_records_every_attempt(client: perdure.Client) -> None:
    async with fast_worker(client, [call], ALL):
        handle = await client.start(call, "flaky", "k1-records")
        assert await handle.result(timeout=20) == "ok after 3"
        hung = await client.start(call, "hangs", "k5-records")
        with pytest.raises(perdure.WorkflowFailedError):
            await hung.result(timeout=20)
    [done] = [e for e in await handle.history() if e["type"] == "ActivityCompleted"]
    assert done["attempt"] == 3
    records = done["attempts"]
    assert [a["attempt"] for a in records] == [1, 2, 3]
    assert [a["error"] for a in records] == [
        {"type": "ConnectionError", "message": "attempt 1 failed"},
        {"type": "ConnectionError", "message": "attempt 2 failed"},
        None,
    ]
    for a, b in itertools.pairwise(records):
        assert a["started_at"] <= a["ended_at"] < b["started_at"] <= b["ended_at"]
    # The backoff lies between the attempts: 100 ms, then 200 ms.
    assert records[1]["started_at"] - records[0]["ended_at"] >= 0.1
    assert records[2]["started_at"] - records[1]["ended_at"] >= 0.2
    [failed] = [e for e in await hung.history() if e["type"] == "ActivityFailed"]
    assert [a["error"]["type"] for a in failed["attempts"]] == ["ActivityTimeoutError"] * 2
    for a in failed["attempts"]:
        assert a["ended_at"] - a["started_at"] >= 0.2  # each ran to its start_to_close_timeout


async def test_non_retryable_application_error_fails_at_once(client: perdure.Client) -> None:
    async with fast_worker(client, [call], ALL):
        with pytest.raises(perdure.WorkflowFailedError) as err:
            await client.execute(call, "refuses", "k2", timeout=20)
    assert len(attempts["k2"]) == 1
    assert err.value.cause.type == "ActivityError"
    assert "card declined" in err.value.cause.message


async def test_non_retryable_types_in_the_policy(client: perdure.Client) -> None:
    async with fast_worker(client, [call], ALL):
        with pytest.raises(perdure.WorkflowFailedError, match="KeyError"):
            await client.execute(call, "bad_key", "k3", timeout=20)
    assert len(attempts["k3"]) == 1


async def test_the_policy_names_an_application_errors_type(client: perdure.Client) -> None:
    # As in Temporal: a name in non_retryable matches ApplicationError(type=...).
    async with fast_worker(client, [call], ALL):
        with pytest.raises(perdure.WorkflowFailedError, match="CardDeclined"):
            await client.execute(call, "declined", "k3-type", timeout=20)
    assert len(attempts["k3-type"]) == 1


async def test_max_attempts_then_activity_error(client: perdure.Client) -> None:
    @workflow.defn(name="catcher")
    async def catcher() -> str:
        try:
            await always_fails("k4")
        except ActivityError as exc:
            return f"{exc.cause.type}: {exc.cause.message} after {exc.attempt}"
        return "no error?"

    async with fast_worker(client, [catcher], ALL):
        result = await client.execute(catcher, timeout=20)
    assert result == "RuntimeError: still broken after 3"
    assert len(attempts["k4"]) == 3


async def test_a_policy_without_a_cap_retries_and_is_described(client: perdure.Client) -> None:
    # max_interval=timedelta.max ("no cap") is recorded as seconds, whose float
    # rounds one past timedelta.max: reading the policy back had raised
    # OverflowError in the worker at each failure (the activity was never
    # retried nor failed) and in describe().
    async with fast_worker(client, [call], ALL):
        handle = await client.start(call, "uncapped", "k-uncapped")
        with pytest.raises(perdure.WorkflowFailedError, match="still broken"):
            await handle.result(timeout=20)
    assert len(attempts["k-uncapped"]) == 3
    [scheduled] = [e for e in await handle.history() if e["type"] == "ActivityScheduled"]
    assert RetryPolicy.from_dict(scheduled["options"]["retry"]).max_interval == timedelta.max


async def test_a_pending_activity_without_a_cap_is_described(client: perdure.Client) -> None:
    @workflow.defn(name="uncapped_wait")
    async def uncapped_wait() -> str:
        slow = always_fails.options(
            retry=RetryPolicy(initial_interval=timedelta(hours=1), max_interval=timedelta.max)
        )
        return await slow("k-uncapped-wait")

    async with fast_worker(client, [uncapped_wait], ALL):
        handle = await client.start(uncapped_wait)
        deadline = time.monotonic() + 20
        while not attempts.get("k-uncapped-wait"):
            assert time.monotonic() < deadline, "the first attempt never ran"
            await asyncio.sleep(0.01)
        while True:
            [pending] = (await handle.describe()).pending_activities
            if pending.last_failure is not None:
                break
            assert time.monotonic() < deadline, "the first failure was never recorded"
            await asyncio.sleep(0.01)
        assert pending.retry_policy is not None
        assert pending.retry_policy.max_interval == timedelta.max
        assert pending.attempt == 1 and not pending.running
        assert pending.next_attempt_at is not None  # an hour's backoff
        await handle.terminate()


async def test_a_retry_policy_that_cannot_be_applied_fails_the_activity(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the cause (options it cannot read, a bug): the attempt had
    # been left unrecorded, so its lease ran out and it ran again, for ever
    # with unlimited retries; the activity fails, not retried, instead.
    import perdure._worker.activities as runner

    def broken(*_: object, **__: object) -> None:
        raise OverflowError("days=1000000000; must have magnitude <= 999999999")

    monkeypatch.setattr(runner, "failure_outcome", broken)
    async with fast_worker(client, [call], ALL):
        handle = await client.start(call, "uncapped", "k-broken-policy")
        with pytest.raises(perdure.WorkflowFailedError) as failed:
            await handle.result(timeout=20)
    assert len(attempts["k-broken-policy"]) == 1
    message = failed.value.cause.message
    assert "still broken (not retried: its retry policy could not be applied: " in message
    assert "OverflowError: days=1000000000" in message


def test_a_policy_keeps_a_huge_interval_through_its_record() -> None:
    # 100 x an initial_interval past timedelta.max / 100 overflows: the
    # default cap is then timedelta.max, not an OverflowError.
    huge = RetryPolicy(initial_interval=timedelta(days=10**8))
    assert huge.max_interval == timedelta.max
    for policy in (huge, RetryPolicy(max_interval=timedelta.max)):
        assert RetryPolicy.from_dict(policy.to_dict()) == policy


async def test_start_to_close_timeout_retries_then_fails(client: perdure.Client) -> None:
    async with fast_worker(client, [call], ALL):
        with pytest.raises(perdure.WorkflowFailedError) as err:
            await client.execute(call, "hangs", "k5", timeout=20)
    assert len(attempts["k5"]) == 2
    assert "start_to_close_timeout" in err.value.cause.message


def test_retry_policy_schedule() -> None:
    policy = RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff=3.0,
        max_interval=timedelta(seconds=20),
        max_attempts=5,
    )
    assert [policy.delay_after(n) for n in range(1, 6)] == [1, 3, 9, 20, 20]
    assert policy.allows_another(4) and not policy.allows_another(5)
    assert RetryPolicy.from_dict(policy.to_dict()) == RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff=3.0,
        max_interval=timedelta(seconds=20),
        max_attempts=5,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_interval": timedelta(0)},
        {"backoff": 0.5},
        {"max_attempts": 0},
        {"initial_interval": timedelta(seconds=5), "max_interval": timedelta(seconds=1)},
    ],
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backoff": float("nan")},  # had made the retry's due time NULL: the failure was lost
        {"backoff": float("inf")},
    ],
)
def test_retry_policy_refuses_a_backoff_that_is_not_finite(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="backoff must be a finite number"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"initial_interval": 5}, "initial_interval must be a timedelta, not int 5"),
        ({"max_interval": 60}, "max_interval must be a timedelta, not int 60"),
        ({"backoff": "2"}, "backoff must be a number, not str"),
        ({"backoff": True}, "backoff must be a number, not bool"),
        ({"max_attempts": 2.5}, "max_attempts must be an int"),
        ({"max_attempts": True}, "max_attempts must be an int"),
        # A lone name had been read letter by letter: ValueError was retried.
        ({"non_retryable": "ValueError"}, r"not one str 'ValueError': write \('ValueError',\)"),
        ({"non_retryable": ValueError}, r"not one class: write \(ValueError,\)"),
        ({"non_retryable": (5,)}, "holds exception classes or their names, not int 5"),
        ({"non_retryable": ("",)}, "holds exception classes or their names"),
        ({"non_retryable": (int,)}, "holds exception classes or their names"),
        ({"non_retryable": 5}, "must be a tuple of exception classes or names, not int"),
    ],
)
def test_retry_policy_says_which_field_has_the_wrong_type(
    kwargs: dict[str, object], says: str
) -> None:
    with pytest.raises(TypeError, match=says):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_max_interval_defaults_to_a_hundred_initial_intervals() -> None:
    """As in Temporal: a policy that sets only a long initial interval had been
    refused (the fixed 100 s default was shorter) where the decorator stood."""
    assert RetryPolicy().max_interval == timedelta(seconds=100)
    slow = RetryPolicy(initial_interval=timedelta(minutes=5))
    assert slow.max_interval == timedelta(minutes=500)
    assert RetryPolicy.from_dict(slow.to_dict()) == slow
    assert RetryPolicy(max_interval=None) == RetryPolicy()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_interval \(0:00:10\) must be >= initial_interval"):
        RetryPolicy(initial_interval=timedelta(minutes=1), max_interval=timedelta(seconds=10))


def test_retry_policy_takes_a_list_of_error_types_as_a_tuple() -> None:
    policy = RetryPolicy(non_retryable=[KeyError, "ValueError"])  # type: ignore[arg-type]
    assert policy.non_retryable == (KeyError, "ValueError")
    assert policy.names_non_retryable() == ["KeyError", "ValueError"]
    assert hash(policy) == hash(RetryPolicy(non_retryable=(KeyError, "ValueError")))


def test_unlimited_retries_never_overflow_the_backoff() -> None:
    assert RetryPolicy().delay_after(5_000) == 100.0
