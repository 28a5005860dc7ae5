// How a history event reads in the workflow page's history table
// (workflow.js): its one-line detail, and its kind (the colour of its row
// and of its type).

import { fmtDuration, fmtTime, json } from "./dom.js";
import { updateDetail } from "./update.js";

/** The event's detail, on one line ("" for none). */
export function eventDetail(e) {
  const f = e.failure || {};
  switch (e.type) {
    case "WorkflowStarted": return `${e.workflow_type}(${(e.args || []).map((a) => json(a)).join(", ")})`;
    case "ActivityScheduled": return `${e.name} · ref ${e.ref} · args ${json(e.args)}`;
    case "ActivityCompleted": return `ref ${e.ref} · attempt ${e.attempt} → ${json(e.result)}`;
    case "ActivityFailed": return `ref ${e.ref} · attempt ${e.attempt} · ${f.type}: ${f.message}`;
    case "TimerStarted": return `ref ${e.ref} · due ${fmtTime(e.fire_at)} (${fmtDuration(e.fire_at - e.time)})`;
    case "TimerFired": case "TimerCancelled": case "ActivityCancelled": return `ref ${e.ref}`;
    case "SignalReceived": return updateDetail(e) ?? `${e.name} ${json(e.payload)}`;
    case "UpdateReplied": return updateDetail(e);
    case "StateSet": return `${e.key} = ${json(e.value)}`;
    case "StreamWritten": return `${e.key} <- ${json(e.value)}`;
    case "StreamClosed": return `${e.key} closed`;
    case "SearchAttributesSet":
      return Object.entries(e.attributes || {})
        .map(([k, v]) => (v === null ? `${k} removed` : `${k} = ${json(v)}`)).join(" · ");
    case "WorkflowCompleted": return json(e.result);
    case "WorkflowFailed": return `${f.type}: ${f.message}`;
    case "WorkflowTerminated": case "CancelRequested": return e.reason || "";
    case "ChildWorkflowRequested": return `${e.workflow_type} · id ${e.workflow_id} · ref ${e.ref}`;
    case "ChildWorkflowStarted": return `ref ${e.ref} · run ${e.run_id}`;
    case "ChildWorkflowCompleted": return `ref ${e.ref} → ${json(e.result)}`;
    case "ChildWorkflowFailed": case "ChildWorkflowStartFailed":
      return `ref ${e.ref} · ${e.status || "failed"} · ${f.type}: ${f.message}`;
    case "ChildWorkflowCancelRequested": return `ref ${e.ref}`;
    case "ExternalSignalRequested": return `${e.name} ${json(e.payload)} → ${e.workflow_id} · ref ${e.ref}`;
    case "ExternalCancelRequested": return `${e.workflow_id} · ${e.reason} · ref ${e.ref}`;
    case "ExternalSignalDelivered":
    case "ExternalCancelDelivered": return `ref ${e.ref} · to run ${e.run_id}`;
    case "ExternalSignalFailed":
    case "ExternalCancelFailed":
      return `ref ${e.ref} · ${e.reason === "closed" ? `its run ended (${e.status})` : "no such workflow"}`;
    case "SideEffectRecorded": return `ref ${e.ref} → ${json(e.value)}`;
    case "PatchRecorded": return e.patch_id;
    case "WorkflowContinuedAsNew": return `args ${json(e.args)}`;
    case "WorkflowTimedOut": return `after ${fmtDuration(e.timeout)}`;
    case "PriorityChanged": return `to ${e.priority}`;
    case "FairnessKeyChanged": return e.fairness_key ? `to ${e.fairness_key}` : "to no key";
    case "WorkflowReset":
      return `from run ${e.from_run_id} at event ${e.at_seq}${e.reason ? ` · ${e.reason}` : ""}`;
    default: return "";
  }
}

/** "workflow", "activity", "timer", "child", "signal", "marker" or "other". */
export function eventKind(type) {
  if (type === "TurnStarted") return "marker";
  if (type.startsWith("ChildWorkflow")) return "child";
  if (type.startsWith("Workflow")) return "workflow";
  if (type.startsWith("Activity")) return "activity";
  if (type.startsWith("Timer")) return "timer";
  if (type === "SignalReceived" || type === "UpdateReplied" || type === "CancelRequested") {
    return "signal";
  }
  if (type.startsWith("ExternalSignal") || type.startsWith("ExternalCancel")) return "signal";
  return "other";
}
