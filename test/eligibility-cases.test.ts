// The eligibility catalogue end to end: both policies against the real reference partner, the
// rows that flip between them, the ineligible static account, and the lint rules of its steps.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEFAULT_CASES_DIR, listCaseFiles, loadCases } from "../src/cases/loader.ts";
import type { CaseDefinition } from "../src/cases/loader.ts";
import { loadRequirements } from "../src/checks/requirements.ts";
import { loadConfigFile, ConfigError, configSecrets } from "../src/config/config.ts";
import { classifyNumber } from "../src/eligibility/classify.ts";
import type { PolicyName } from "../src/eligibility/classify.ts";
import { startReferencePartner } from "../src/partner/index.ts";
import type { ReferencePartner } from "../src/partner/index.ts";
import { runSuite } from "../src/runner/suite.ts";
import { lintTempCase } from "./temp-case.ts";
import type { SuiteRunResult } from "../src/runner/suite.ts";
import type { EndpointConfig } from "../src/config/config.ts";

const requirements = loadRequirements();
const { cases } = loadCases(requirements, listCaseFiles(DEFAULT_CASES_DIR));
const eligibilityCases = cases.filter((c) => c.area === "eligibility");

async function runEligibility(policy: PolicyName, adjust: (config: EndpointConfig) => EndpointConfig = (c) => c): Promise<SuiteRunResult> {
  const partner: ReferencePartner = await startReferencePartner({ policy });
  try {
    return await runSuite({ config: adjust(partner.config), endpointDescription: "test", requirements, allCases: cases, selected: eligibilityCases, jobs: 4 });
  } finally {
    await partner.stop();
  }
}

function failures(run: SuiteRunResult): string {
  return run.results.filter((r) => r.status !== "pass").map((r) => `${r.id}: ${r.status} ${r.reason ?? ""} ${r.failures.map((f) => `${f.requirement}: expected ${f.expected}, got ${f.actual}`).join("; ")}`).join("\n");
}

/** The number of a one-step registration case, or undefined. */
function registeredNumber(c: CaseDefinition): string | undefined {
  if (c.steps.length !== 1) return undefined;
  const step = c.steps[0] as { register?: { phone?: string; expect?: string } };
  return step.register?.phone !== undefined && (step.register.expect ?? "policy") === "policy" ? step.register.phone : undefined;
}

/** Whether the registration of a one-step case was accepted, read from the check the step made. */
function accepted(run: SuiteRunResult, id: string): boolean {
  const result = run.results.find((r) => r.id === id)!;
  const decision = result.checks[0]!;
  assert.match(decision.actual, /^(accepted|not-allowed|cancel)/, `${id}: ${decision.actual}`);
  return decision.actual.startsWith("accepted");
}

describe("eligibility catalogue against the reference partner", function () {
  this.timeout(120_000);
  const runs = new Map<PolicyName, SuiteRunResult>();

  before(async () => {
    runs.set("eea", await runEligibility("eea"));
    runs.set("whatsapp-european-region", await runEligibility("whatsapp-european-region"));
  });

  it("covers every ELG requirement", () => {
    const covered = new Set(eligibilityCases.flatMap((c) => c.requirements));
    for (const r of requirements.filter((x) => x.id.startsWith("ELG-"))) assert.ok(covered.has(r.id), `${r.id} has no case`);
  });

  it("passes every eligibility case under both policies", () => {
    for (const [policy, run] of runs) {
      assert.equal(failures(run), "", `policy ${policy}`);
      assert.equal(run.summary.pass, eligibilityCases.length);
      for (const r of run.results) assert.equal(r.timeoutWaitMs, 0, `${r.id} waited on a timeout`);
    }
  });

  it("flips exactly the registrations the two policies decide differently", () => {
    const registrations = eligibilityCases.map((c) => ({ id: c.id, phone: registeredNumber(c) })).filter((x): x is { id: string; phone: string } => x.phone !== undefined);
    assert.ok(registrations.length >= 27, `only ${registrations.length} registration cases`);
    const flipped = registrations.filter((r) => accepted(runs.get("eea")!, r.id) !== accepted(runs.get("whatsapp-european-region")!, r.id)).map((r) => r.id);
    const differs = registrations.filter((r) => classifyNumber(r.phone, "eea").eligible !== classifyNumber(r.phone, "whatsapp-european-region").eligible).map((r) => r.id);
    assert.deepEqual(flipped, differs);
    assert.deepEqual(flipped.map((id) => id.replace("eligibility/register-", "")).sort(), ["campione", "guernsey", "isle-of-man", "jersey", "switzerland", "united-kingdom", "vatican"]);
    // A row that flips is a policy row: the case lists ELG-10 and the decision was checked under it.
    for (const id of flipped) {
      const result = runs.get("eea")!.results.find((r) => r.id === id)!;
      assert.ok(result.checks.some((c) => c.requirement === "ELG-10" && c.ok), `${id} checked ELG-10`);
    }
  });

  it("keeps the passwords of the registrations and the ineligible account out of the transcripts", () => {
    const text = JSON.stringify(runs.get("eea")!.results.map((r) => r.transcript));
    assert.ok(text.includes("[redacted]"), "registration passwords were redacted");
    assert.doesNotMatch(text, /<password>(?!\[redacted\])/);
  });

  it("reports the cases that need an ineligible account not-tested when the config has none", async () => {
    const run = await runEligibility("eea", (config) => ({ ...config, accounts: { ...config.accounts, ineligible: [] } }));
    const notTested = run.results.filter((r) => r.status === "not-tested");
    assert.deepEqual(notTested.map((r) => r.id).sort(), ["eligibility/message-from-ineligible", "eligibility/message-to-ineligible", "eligibility/same-refusal-existing-or-not"]);
    for (const r of notTested) assert.match(r.reason ?? "", /accounts\.ineligible/);
    assert.equal(run.verdict, "incomplete");
  });
});

describe("eligibility case lint and config", () => {
  function writeFile(dir: string, name: string, body: string): string {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, name);
    writeFileSync(file, body);
    return file;
  }

  it("requires the needs of ineligible accounts and registrations, and actors named by register", () => {
    const text = lintTempCase("eligibility", "sample", `format: 1
id: eligibility/sample
title: A sample case with an ineligible actor and a registration
requirements: [ELG-07]
level: MUST
needs: []
tags: [eligibility]
spec: TPC/1 §9, the same refusal either way.
actors:
  stuck: { account: ineligible }
steps:
  - register: { phoneOf: stuck, username: ghost, as: a, requirement: ELG-07 }
`);
    assert.match(text, /actor stuck uses an ineligible account, so needs must list "ineligible-account"/);
    assert.match(text, /step register: registers in band, so needs must list "registration"/);
    assert.match(text, /step register: username "ghost" is not an actor of this case/);
  });

  it("reads accounts.ineligible, counts its passwords as secrets, and checks its entries", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-elg-config-"));
    const good = writeFile(dir, "good.yaml", "endpoint: xmpp://127.0.0.1:5222\ndomain: partner.example\naccounts:\n  ineligible:\n    - { username: tpc-test-gl, password: s3cret-pass, phone: \"+299 32 10 00\" }\n");
    const config = loadConfigFile(good);
    assert.deepEqual(config.accounts.ineligible, [{ username: "tpc-test-gl", password: "s3cret-pass", phone: "+299 32 10 00" }]);
    assert.ok(configSecrets(config).includes("s3cret-pass"));
    const bad = writeFile(dir, "bad.yaml", "endpoint: xmpp://127.0.0.1:5222\ndomain: partner.example\naccounts:\n  ineligible:\n    - { username: tpc-test-gl, phone: \"+299 32 10 00\" }\n");
    assert.throws(() => loadConfigFile(bad), (err: unknown) => err instanceof ConfigError && /accounts\.ineligible\.0: must have required property 'password'/.test(err.problems.join("\n")));
  });
});
