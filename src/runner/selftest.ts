// The suite proves itself: the reference partner must pass every case, and every mutant must
// fail exactly the requirements it declares, no more, no less. Each partner runs in a child
// process of its own (`chatconform run --partner-mutant …`): the Signal library is single-threaded
// JavaScript, so processes are what lets a selftest use every core, and a broken mutant can never
// take the others down.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Verdict } from "../checks/model.ts";
import { MUTANTS } from "../partner/mutants.ts";
import type { Mutant } from "../partner/mutants.ts";
import { POLICIES } from "../eligibility/classify.ts";
import type { PolicyName } from "../eligibility/classify.ts";

/** One partner of the selftest: the reference (under a policy) or a mutant (under its policy). */
interface SelftestPartner {
  mutant?: Mutant;
  policy: PolicyName;
}

export interface SelftestRow {
  partner: string;
  /** The compliant reference partner (under one of the policies), not a mutant. */
  reference: boolean;
  /** The eligibility policy of the run. */
  policy: PolicyName;
  description: string;
  declared: string[];
  failed: string[];
  /** Declared but not failed: the suite missed the fault. */
  missed: string[];
  /** Failed but not declared: collateral failures. */
  collateral: string[];
  errors: string[];
  verdict: Verdict | "crashed";
  durationMs: number;
  ok: boolean;
}

export interface SelftestOptions {
  /** Cases in parallel inside each partner's run. */
  jobs?: number;
  /** Partners run at the same time, each in its own process (default: the number of cores). */
  parallel?: number;
  mutants?: readonly Mutant[];
  signal?: AbortSignal;
  onRow?: (row: SelftestRow) => void;
}

const BIN = fileURLToPath(new URL("../../bin/chatconform.js", import.meta.url));

interface ReportSlice {
  verdict: Verdict;
  requirements: { id: string; status: string }[];
  cases: { id: string; status: string; reason?: string; failures: { requirement: string; expected: string; actual: string }[] }[];
}

function runChild({ mutant, policy }: SelftestPartner, jobs: number, signal?: AbortSignal): Promise<{ report?: ReportSlice; stderr: string }> {
  const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-selftest-"));
  const args = [BIN, "run", "--quiet", "--no-color", "--out", out, "--jobs", String(jobs), "--policy", policy];
  if (mutant) args.push("--partner-mutant", mutant.name);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], signal });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 20_000) stderr += chunk.toString();
    });
    child.on("error", (err) => {
      stderr += err.message;
    });
    child.on("close", () => {
      let report: ReportSlice | undefined;
      try {
        report = JSON.parse(readFileSync(path.join(out, "latest", "report.json"), "utf8")) as ReportSlice;
      } catch {
        report = undefined;
      }
      rmSync(out, { recursive: true, force: true });
      resolve({ report, stderr });
    });
  });
}

function judge({ mutant, policy }: SelftestPartner, report: ReportSlice | undefined, stderr: string, durationMs: number): SelftestRow {
  const declared = mutant?.breaks ?? [];
  const name = mutant?.name ?? "reference";
  const base = {
    partner: policy === "eea" ? name : `${name} (${policy})`, reference: !mutant, policy,
    description: mutant?.description ?? `the compliant reference partner under the ${policy} policy`, declared, durationMs,
  };
  if (!report) {
    const why = stderr.trim().split("\n").slice(-3).join(" ") || "no report was written";
    return { ...base, failed: [], missed: declared, collateral: [], errors: [`the run crashed: ${why}`], verdict: "crashed", ok: false };
  }
  const failed = report.requirements.filter((r) => r.status === "fail").map((r) => r.id);
  const missed = declared.filter((id) => !failed.includes(id));
  const collateral = failed.filter((id) => !declared.includes(id));
  const errors = report.cases.filter((c) => c.status === "error").map((c) => `${c.id}: ${c.reason ?? "error"}`);
  const allPass = report.cases.every((c) => c.status === "pass");
  if (!mutant) {
    for (const c of report.cases.filter((x) => x.status !== "pass" && x.status !== "error")) {
      const f = c.failures[0];
      errors.push(`${c.id}: ${c.status}${f ? ` (${f.requirement}: expected ${f.expected}, got ${f.actual})` : c.reason ? ` (${c.reason})` : ""}`);
    }
  }
  const ok = mutant ? missed.length === 0 && collateral.length === 0 && errors.length === 0 : allPass && report.verdict === "compliant";
  return { ...base, failed, missed, collateral, errors, verdict: report.verdict, ok };
}

export async function runSelftest(options: SelftestOptions = {}): Promise<{ rows: SelftestRow[]; ok: boolean }> {
  // The reference partner under every policy, then each mutant under its own.
  const partners: SelftestPartner[] = [
    ...POLICIES.map((policy) => ({ policy })),
    ...(options.mutants ?? MUTANTS).map((mutant) => ({ mutant, policy: mutant.policy ?? "eea" })),
  ];
  const rows: SelftestRow[] = new Array(partners.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      if (options.signal?.aborted) return;
      const index = next++;
      if (index >= partners.length) return;
      const partner = partners[index]!;
      const started = Date.now();
      const { report, stderr } = await runChild(partner, options.jobs ?? 4, options.signal);
      const row = judge(partner, report, stderr, Date.now() - started);
      rows[index] = row;
      options.onRow?.(row);
    }
  };
  const parallel = Math.max(1, options.parallel ?? os.availableParallelism());
  await Promise.all(Array.from({ length: Math.min(parallel, partners.length) }, worker));
  const done = rows.filter(Boolean);
  return { rows: done, ok: done.length === partners.length && done.every((r) => r.ok) };
}
