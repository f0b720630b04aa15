// A case stopped before its steps end (deadline, Ctrl-C) gets the status that says so, and no made-up
// failure: the step still waiting when teardown closes its connection must not record "nothing
// arrived" against the partner. Real partner, real crypto.
import assert from "node:assert/strict";
import type { CaseDefinition } from "../src/cases/loader.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import type { ReferencePartner } from "../src/partner/index.ts";
import { runSuite } from "../src/runner/suite.ts";
import { loadTempCase } from "./temp-case.ts";

const requirements = loadRequirements();

/** A case that waits for a message the reflector never sends (it is never asked to). */
function waitingCase(timeoutMs?: number): CaseDefinition {
  return loadTempCase("transport/waits-forever", [
    "format: 1",
    "id: transport/waits-forever",
    "title: Waits for a message that nobody sends",
    "requirements: [TRN-05]",
    "level: MUST",
    "needs: [reflector]",
    "tags: [ordering]",
    "spec: a test of the runner, not of a partner.",
    ...(timeoutMs ? [`timeoutMs: ${timeoutMs}`] : []),
    "actors:",
    "  alice: {}",
    "steps:",
    "  - connect: { actor: alice }",
    "  - expect: { actor: alice, stanza: encrypted, from: reflector, requirement: TRN-05 }",
  ]);
}

describe("a case stopped before its steps end", function () {
  this.timeout(60_000);
  let partner: ReferencePartner;
  before(async () => {
    partner = await startReferencePartner();
  });
  after(async () => {
    await partner.stop();
  });

  it("interrupted while waiting: not-tested, the requirement not-tested, no failed check, verdict incomplete", async () => {
    const caseDef = waitingCase();
    const controller = new AbortController();
    const run = await runSuite({
      // The stanza wait outlasts the grace: the interruption, not the wait, ends the step.
      config: { ...partner.config, timeouts: { ...partner.config.timeouts, stanza: 30_000, grace: 200 } },
      endpointDescription: "test", requirements, allCases: [caseDef], selected: [caseDef], jobs: 1,
      signal: controller.signal,
      attach: (events) => events.on("step", (step) => {
        if (step.description.includes("expect")) controller.abort("SIGINT");
      }),
    });
    const result = run.results[0]!;
    assert.equal(result.status, "not-tested", result.reason);
    assert.match(result.reason ?? "", /^interrupted by SIGINT: stopped after the grace of 200 ms \(in steps\[1\] expect alice\)$/);
    assert.deepEqual(result.failures, []);
    assert.equal(run.requirements.find((r) => r.id === "TRN-05")!.status, "not-tested");
    assert.equal(run.verdict, "incomplete");
  });

  it("past its deadline: error, the requirement error, no failed check, verdict incomplete", async () => {
    // The deadline may hit while alice still connects on a loaded machine: any step, same outcome.
    const caseDef = waitingCase(3_000);
    const run = await runSuite({
      config: { ...partner.config, timeouts: { ...partner.config.timeouts, stanza: 30_000 } },
      endpointDescription: "test", requirements, allCases: [caseDef], selected: [caseDef], jobs: 1,
    });
    const result = run.results[0]!;
    assert.equal(result.status, "error", result.reason);
    assert.match(result.reason ?? "", /^steps\[[01]\] (connect|expect) alice: the case did not finish within 3000 ms$/);
    assert.deepEqual(result.failures, []);
    assert.equal(run.requirements.find((r) => r.id === "TRN-05")!.status, "error");
    assert.equal(run.verdict, "incomplete");
  });
});
