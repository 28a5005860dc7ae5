"""The public surface is deliberate: pin it."""

from __future__ import annotations

import perdure
from perdure import activity, workflow


def test_top_level_all_is_pinned() -> None:
    assert sorted(perdure.__all__) == [
        "ActivityError",
        "ApplicationError",
        "AsyncActivityCancelledError",
        "AsyncActivityHandle",
        "AsyncActivityNotFoundError",
        "AttributeRange",
        "ChildWorkflowError",
        "Client",
        "DataConverter",
        "NonDeterminismError",
        "PayloadCodec",
        "PayloadCodecError",
        "PayloadError",
        "PerdureError",
        "RetryPolicy",
        "SchemaVersionError",
        "StoreError",
        "SyncAsyncActivityHandle",
        "SyncClient",
        "SyncWorkflowHandle",
        "UpdateRejectedError",
        "UpdateTimeoutError",
        "Worker",
        "WorkflowAlreadyStartedError",
        "WorkflowCancelledError",
        "WorkflowClosedError",
        "WorkflowDescription",
        "WorkflowExecution",
        "WorkflowFailedError",
        "WorkflowHandle",
        "WorkflowNotFoundError",
        "WorkflowResetError",
        "WorkflowTerminatedError",
        "WorkflowTimedOutError",
        "activity",
        "workflow",
    ]
    for name in perdure.__all__:
        assert not name.startswith("_") and hasattr(perdure, name)


def test_workflow_and_activity_modules_are_pinned() -> None:
    assert sorted(workflow.__all__) == [
        "ChildHandle",
        "ParentClosePolicy",
        "UpdateRequest",
        "WorkflowDefinition",
        "WorkflowInfo",
        "cancel_workflow",
        "close_stream",
        "continue_as_new",
        "defn",
        "execute_activity",
        "execute_child",
        "in_workflow",
        "info",
        "logger",
        "newer_build",
        "now",
        "patched",
        "random",
        "set_search_attributes",
        "set_state",
        "side_effect",
        "signal_workflow",
        "sleep",
        "start_child",
        "uuid4",
        "wait_condition",
        "wait_signal",
        "wait_update",
        "write_stream",
    ]
    assert sorted(activity.__all__) == [
        "ActivityFunction",
        "ActivityInfo",
        "ActivityOptions",
        "CancellationType",
        "CompleteAsyncError",
        "cancellation_reason",
        "defn",
        "heartbeat",
        "in_activity",
        "info",
        "logger",
        "raise_complete_async",
        "write_stream",
    ]


def test_errors_share_one_base() -> None:
    from perdure import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), perdure.PerdureError)


def test_interceptors_module_is_pinned() -> None:
    from perdure import interceptors

    assert sorted(interceptors.__all__) == [
        "ActivityCall",
        "ActivityNext",
        "Interceptor",
        "MAX_HEADERS_BYTES",
        "WorkflowStart",
    ]


def test_transactions_module_is_pinned() -> None:
    from perdure import transactions

    assert transactions.__all__ == ["AppDatabase"]
    assert [name for name in vars(transactions.AppDatabase) if not name.startswith("_")] == [
        "transaction",
        "close",
    ]
