"""Every error perdure raises survives pickling with its attributes: one
raised in a process pool's worker (or returned by another process) reaches
the caller as itself. Those whose ``__init__`` takes keyword-only
arguments (``WorkflowFailedError(..., workflow_id=, run_id=, cause=)``)
could not be unpickled before, and the pool raised a TypeError instead."""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import pickle
from typing import Any

import pytest

from perdure import errors
from perdure.errors import FailureCause, PerdureError, WorkflowFailedError

CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, PerdureError) and cls.__module__ == errors.__name__
    ),
    key=lambda c: c.__name__,
)


def _value(name: str, annotation: str) -> Any:
    if "FailureCause" in annotation:
        return FailureCause("ValueError", "the card was declined", "Traceback ...", {"k": 1})
    if annotation.startswith("int"):
        return 3
    if annotation.startswith("bool"):
        return True
    if annotation.startswith("str"):
        return f"the {name}"
    return {"detail": name}


def _example(cls: type[PerdureError]) -> PerdureError:
    """An instance with every parameter of its __init__ given a value."""
    values: dict[str, Any] = {}
    args: list[Any] = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = _value(name, str(param.annotation))
        if param.kind == param.KEYWORD_ONLY:
            values[name] = value
        else:
            args.append(value)
    return cls(*(args or ["something went wrong"]), **values)


def _same(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b)
    assert a.args == b.args and str(a) == str(b)
    assert set(vars(a)) == set(vars(b))
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, FailureCause):
            assert vars(value) == vars(other), name
        else:
            assert value == other, name


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_error_round_trips_through_pickle(cls: type[PerdureError]) -> None:
    error = _example(cls)
    _same(error, pickle.loads(pickle.dumps(error)))


def _fails(workflow_id: str) -> None:
    raise WorkflowFailedError(
        f"workflow {workflow_id!r} failed",
        workflow_id=workflow_id,
        run_id="r-1",
        cause=FailureCause("ValueError", "boom"),
    )


def test_an_error_raised_in_a_process_pool_reaches_the_caller_as_itself() -> None:
    context = multiprocessing.get_context("fork")
    with (
        concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool,
        pytest.raises(WorkflowFailedError) as raised,
    ):
        pool.submit(_fails, "order-7").result(timeout=30)
    assert raised.value.workflow_id == "order-7" and raised.value.run_id == "r-1"
    assert raised.value.cause.message == "boom"
