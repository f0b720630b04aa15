// The differential check of the two backends (issue 8): `selftest --backend prosody` and the default
// backend give the same verdicts, case by case and requirement by requirement, for the compliant
// partner under both policies and for every server-side mutant that exists on both. Slow (two
// selftests): it runs with `npm run test:prosody` (CHATCONFORM_PROSODY_TESTS=full), which .ci/run
// calls after installing Prosody; a plain `npm test` reports it skipped and why.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { compareReports, describeDifferences, normalise, readReport } from "../src/partner/prosody/differential.ts";
import type { ComparableReport } from "../src/partner/prosody/differential.ts";
import { prosodySkipReason } from "../src/partner/prosody/availability.ts";
import { PROSODY_SERVER_MUTANTS } from "../src/partner/prosody/mutants.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = path.join(ROOT, "bin/chatconform.js");

describe("Prosody differential: comparing two reports", () => {
  const base = (): ComparableReport => ({
    verdict: "compliant",
    requirements: [{ id: "ENC-06", status: "pass" }, { id: "TRN-03", status: "pass" }],
    cases: [
      {
        id: "encryption/text-roundtrip", status: "pass",
        checks: [
          { requirement: "ENC-06", step: "steps[3] expect alice m1", expected: "receipt for 6c9ae3ef-8 from tpc-test-text-roundtrip-alice-02f415@partner.test/dev0-9a2734", ok: true },
          { requirement: "ENC-06", step: "steps[4] expect alice m1", expected: "reflected sha256 f3dabd11fbb8e9591b43cfd09825dbf9132ba1e1ec86436a0fb36643c4fa42b0", ok: true },
        ],
        failures: [],
      },
      { id: "transport/unknown-iq", status: "pass", checks: [{ requirement: "TRN-03", step: "steps[1] iq alice", expected: "service-unavailable", ok: true }], failures: [] },
    ],
  });

  it("ignores what a run draws at random: ids, JIDs, hashes, ports, URLs", () => {
    assert.equal(normalise("tpc-test-x-alice-02f415@partner.test/dev0-9a2734 6c9ae3ef-12 https://127.0.0.1:41855/file_share/x/photo.jpg 1139648101"), "tpc-test-x-alice-<rand>@partner.test/dev0-<rand> <stanza-id> <url> <n>");
    assert.equal(normalise("gone within 10000 ms; answered within 5 s; 16 MiB"), "gone within <time>; answered within <time>; 16 MiB");
    const a = base();
    const b = base();
    b.cases[0]!.checks![0]!.expected = "receipt for 1b2c3d4e-8 from tpc-test-text-roundtrip-alice-77aa01@partner.test/dev0-ffee01";
    b.cases[0]!.checks![1]!.expected = "reflected sha256 0000000000000000000000000000000000000000000000000000000000000000";
    assert.deepEqual(compareReports(a, b), []);
  });

  it("names every other difference: a case status, a check outcome, a requirement, the verdict", () => {
    const a = base();
    const b = base();
    b.verdict = "non-compliant";
    b.requirements[1]!.status = "fail";
    b.cases[1]!.status = "fail";
    b.cases[1]!.checks![0]!.ok = false;
    b.cases[1]!.failures = [{ requirement: "TRN-03", expected: "service-unavailable" }];
    const diffs = compareReports(a, b);
    const text = describeDifferences(diffs, ["builtin", "prosody"]);
    for (const needle of ["run: verdict", "TRN-03: requirement status", "transport/unknown-iq: case status", "transport/unknown-iq: check only in a", "transport/unknown-iq: failure only in b"]) {
      assert.ok(text.includes(needle), `${needle} in\n${text}`);
    }
  });
});

const prosodyMissing = prosodySkipReason();
const skipReason = prosodyMissing ?? (process.env.CHATCONFORM_PROSODY_TESTS === "full" ? undefined : "slow; runs with `npm run test:prosody` (CI runs it after installing Prosody)");
const slow = skipReason ? describe.skip : describe;

slow(`Prosody differential: both backends give the same verdicts${skipReason ? ` (skipped: ${skipReason})` : ""}`, function () {
  this.timeout(60 * 60_000);
  const seed = 20_260_101;
  let dir: string;
  const reports: Record<"builtin" | "prosody", string> = { builtin: "", prosody: "" };
  const selftests: Partial<Record<"builtin" | "prosody", { ok: boolean; rows: { partner: string; ok: boolean; errors: string[]; missed: string[]; collateral: string[] }[] }>> = {};

  before(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-differential-"));
    const mutants = PROSODY_SERVER_MUTANTS.map((m) => m.name).join(",");
    for (const backend of ["builtin", "prosody"] as const) {
      reports[backend] = path.join(dir, backend);
      const started = Date.now();
      const r = spawnSync(process.execPath, [BIN, "selftest", "--json", "--backend", backend, "--mutant", mutants, "--keep-reports", reports[backend], "--seed", String(seed)], {
        cwd: ROOT, encoding: "utf8", maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" },
      });
      assert.ok(r.stdout, `selftest --backend ${backend} printed nothing: ${r.stderr}`);
      selftests[backend] = JSON.parse(r.stdout) as (typeof selftests)["builtin"];
      process.stdout.write(`      (selftest --backend ${backend}: ${selftests[backend]!.rows.length} partners, ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
  });
  after(() => {
    if (dir && !process.env.CHATCONFORM_KEEP_DIFFERENTIAL) rmSync(dir, { recursive: true, force: true });
  });

  for (const backend of ["builtin", "prosody"] as const) {
    it(`selftest --backend ${backend}: the reference passes everything and each server mutant fails exactly what it declares`, () => {
      const result = selftests[backend]!;
      const bad = result.rows.filter((r) => !r.ok).map((r) => `${r.partner}: missed ${r.missed.join(",") || "-"}, collateral ${r.collateral.join(",") || "-"}; ${r.errors.slice(0, 3).join("; ")}`);
      assert.equal(bad.length, 0, bad.join("\n"));
      assert.equal(result.rows.length, PROSODY_SERVER_MUTANTS.length + 2);
    });
  }

  it("every partner's report is the same on both backends, case by case and requirement by requirement", () => {
    const partners = readdirSync(reports.prosody).sort();
    assert.deepEqual(partners, readdirSync(reports.builtin).sort());
    assert.ok(partners.includes("reference") && partners.includes("reference@whatsapp-european-region"));
    const problems: string[] = [];
    for (const partner of partners) {
      const files = (["builtin", "prosody"] as const).map((b) => path.join(reports[b], partner, "latest", "report.json"));
      if (!files.every((f) => existsSync(f))) {
        problems.push(`${partner}: no report (${files.filter((f) => !existsSync(f)).join(", ")})`);
        continue;
      }
      const diffs = compareReports(readReport(files[0]!), readReport(files[1]!));
      if (diffs.length > 0) problems.push(`${partner}:\n  ${describeDifferences(diffs, ["builtin", "prosody"]).split("\n").join("\n  ")}`);
    }
    assert.equal(problems.length, 0, problems.join("\n"));
  });
});
