"""perdure: durable execution for Python.

Layers (dependencies point downward only; ``tests/test_layers.py`` enforces it):

    public API   workflow, activity, client, _sync, _worker, errors, retry
    worker       _worker/   (runtime, store, serialization)
    runtime      _runtime/  (history model, serialization; no I/O)
    store        _store/    (history model; all SQL lives here)
    history      _history   (nothing)
    serialization _converter (errors only)
"""

from perdure import activity, workflow
from perdure._converter import DataConverter, PayloadCodec
from perdure._sync import SyncAsyncActivityHandle, SyncClient, SyncWorkflowHandle
from perdure._worker.worker import Worker
from perdure.client import (
    AsyncActivityHandle,
    AttributeRange,
    Client,
    WorkflowDescription,
    WorkflowExecution,
    WorkflowHandle,
)
from perdure.errors import (
    ActivityError,
    ApplicationError,
    AsyncActivityCancelledError,
    AsyncActivityNotFoundError,
    ChildWorkflowError,
    NonDeterminismError,
    PayloadCodecError,
    PayloadError,
    PerdureError,
    SchemaVersionError,
    StoreError,
    UpdateRejectedError,
    UpdateTimeoutError,
    WorkflowAlreadyStartedError,
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowResetError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from perdure.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
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
