// End to end: the real catalogue, the real in-process partner, real crypto. No mocks.
import assert from "node:assert/strict";
import { DEFAULT_CASES_DIR, listCaseFiles, loadCases } from "../src/cases/loader.ts";
import { selectCases } from "../src/cases/select.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import type { ReferencePartner } from "../src/partner/index.ts";
import { runSuite } from "../src/runner/suite.ts";
import { loadTempCase } from "./temp-case.ts";
import type { SuiteRunResult } from "../src/runner/suite.ts";

const requirements = loadRequirements();
const { cases } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));

async function runAgainst(mutant: string | undefined, selected = cases): Promise<SuiteRunResult> {
  const partner: ReferencePartner = await startReferencePartner({ mutant });
  try {
    return await runSuite({ config: partner.config, endpointDescription: "test", requirements, allCases: cases, selected, jobs: 4 });
  } finally {
    await partner.stop();
  }
}

function describeFailures(run: SuiteRunResult): string {
  return run.results.filter((r) => r.status !== "pass").map((r) => `${r.id}: ${r.status} ${r.reason ?? ""} ${r.failures.map((f) => `${f.requirement} expected ${f.expected}, got ${f.actual}`).join("; ")}`).join("\n");
}

describe("end to end against the reference partner", function () {
  this.timeout(120_000);

  it("passes every case of the catalogue: verdict compliant", async () => {
    const run = await runAgainst(undefined);
    assert.equal(describeFailures(run), "");
    assert.equal(run.verdict, "compliant");
    assert.equal(run.summary.pass, cases.length);
    for (const r of run.results) {
      assert.ok(r.checks.length > 0, `${r.id} made no check`);
      assert.equal(r.timeoutWaitMs, 0, `${r.id} waited on a timeout`);
      assert.ok(r.transcript.length > 0, `${r.id} has no transcript`);
    }
  });

  it("fails ENC-14 (and nothing else) against a server that delivers plaintext", async () => {
    const run = await runAgainst("plaintext-accepted");
    assert.equal(run.verdict, "non-compliant");
    assert.deepEqual(run.requirements.filter((r) => r.status === "fail").map((r) => r.id), ["ENC-14"], describeFailures(run));
    const failed = run.results.find((r) => r.id === "encryption/plaintext-refused")!;
    assert.equal(failed.status, "fail");
    assert.match(failed.failures[0]!.expected, /encryption-required/);
    assert.ok(failed.failures[0]!.evidence.length > 0);
  });

  it("a barrier catches the receipt a careless reflector sends for a replay", async () => {
    const selected = selectCases(cases, { cases: ["encryption/replay-dropped"] }).selected;
    const run = await runAgainst("no-receipt-check", selected);
    const replay = run.results.find((r) => r.id === "encryption/replay-dropped")!;
    assert.equal(replay.status, "fail");
    assert.equal(replay.failures[0]!.requirement, "ENC-10");
    assert.match(replay.failures[0]!.actual, /receipt for /);
    // The offending stanza is in the transcript, as evidence.
    const evidence = replay.transcript.find((e) => e.seq === replay.failures[0]!.evidence[0]);
    assert.match(evidence?.xml ?? "", /urn:xmpp:receipts/);
  });

  it("expect-no on a second device waits for that device's own stream, not only device 0's", async () => {
    // The partner's message goes to both devices; device 0 takes it, device 1 leaves it in its inbox.
    // expect-no on device 1 must find it every time: a barrier on device 0's stream alone would race.
    const caseDef = loadTempCase("encryption/second-device-barrier", [
      "format: 1",
      "id: encryption/second-device-barrier",
      "title: A message the second device got is seen by expect-no on that device",
      "requirements: [ENC-17]",
      "level: MUST",
      "needs: [reflector, hook:send]",
      "tags: [multi-device, barrier]",
      "spec: the barrier of expect-no covers the device it looks at.",
      "actors:",
      "  alice: { devices: 2 }",
      "steps:",
      "  - connect: { actor: alice }",
      "  - hook: { actor: alice, name: send, args: { to: alice, kind: text, text: \"on both\" } }",
      "  - receive: { actor: alice, device: 0, from: reflector, as: p0, requirement: ENC-17 }",
      "  - expect-no: { actor: alice, device: 1, stanza: encrypted, from: reflector, barrier: ping, requirement: ENC-17 }",
    ]);
    const run = await runAgainst(undefined, [caseDef]);
    const result = run.results[0]!;
    assert.equal(result.status, "fail", describeFailures(run));
    assert.equal(result.failures.length, 1);
    assert.equal(result.failures[0]!.expected, "no encrypted from reflector");
    assert.match(result.failures[0]!.actual, /^encrypted message \(text\)$/);
  });

  it("reports cases whose hook the endpoint lacks as not-tested, never pass", async () => {
    const partner = await startReferencePartner();
    try {
      const run = await runSuite({ config: { ...partner.config, hooks: [] }, endpointDescription: "no hooks", requirements, allCases: cases, selected: cases, jobs: 4 });
      const hookCases = run.results.filter((r) => cases.find((c) => c.id === r.id)!.needs.some((n) => n.startsWith("hook:")));
      assert.ok(hookCases.length > 0);
      for (const r of hookCases) assert.equal(r.status, "not-tested", r.id);
      assert.equal(run.verdict, "incomplete", describeFailures(run));
    } finally {
      await partner.stop();
    }
  });
});

