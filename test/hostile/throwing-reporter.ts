// A reporter module that misbehaves on purpose, as a library bug in a socket callback would: when a
// case's first step starts, it throws from a timer (unknown-iq) or leaves a rejection unhandled
// (error-stanzas-well-formed). Both were started inside the case, so each must end that case as
// `error` with the reason, and the run must go on to write its report.
import type { EventEmitter } from "node:events";
import type { RunnerEvents } from "../../src/runner/events.ts";

export default function createReporter() {
  return {
    attach(events: EventEmitter<RunnerEvents>): void {
      const seen = new Set<string>();
      events.on("step", (step) => {
        if (seen.has(step.caseId)) return;
        seen.add(step.caseId);
        if (step.caseId === "transport/unknown-iq") {
          setTimeout(() => {
            throw new Error("thrown from a callback");
          }, 0);
        }
        if (step.caseId === "transport/error-stanzas-well-formed") {
          setTimeout(() => void Promise.reject(new Error("rejected and never handled")), 0);
        }
      });
    },
  };
}
