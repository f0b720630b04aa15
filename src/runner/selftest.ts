// The suite proves itself: the reference partner must pass every case, and every mutant must
// fail exactly the requirements it declares, no more, no less.
import type { CaseDefinition } from "../cases/loader.ts";
import type { Requirement, Verdict } from "../checks/model.ts";
import { MUTANTS } from "../partner/mutants.ts";
import type { Mutant } from "../partner/mutants.ts";
import { startReferencePartner } from "../partner/index.ts";
import { runSuite } from "./suite.ts";

export interface SelftestRow {
  partner: string;
  description: string;
  declared: string[];
  failed: string[];
  /** Declared but not failed: the suite missed the fault. */
  missed: string[];
  /** Failed but not declared: collateral failures. */
  collateral: string[];
  errors: string[];
  verdict: Verdict;
  durationMs: number;
  ok: boolean;
}

export interface SelftestOptions {
  requirements: Requirement[];
  cases: CaseDefinition[];
  jobs?: number;
  mutants?: readonly Mutant[];
  signal?: AbortSignal;
  onRow?: (row: SelftestRow) => void;
}

async function runAgainst(options: SelftestOptions, mutant?: Mutant): Promise<SelftestRow> {
  const started = Date.now();
  const partner = await startReferencePartner({ mutant: mutant?.name });
  try {
    const run = await runSuite({
      config: partner.config,
      endpointDescription: mutant ? `reference partner, mutant ${mutant.name}` : "reference partner",
      requirements: options.requirements,
      allCases: options.cases,
      selected: options.cases,
      jobs: options.jobs,
      mutant: mutant?.name,
      command: "selftest",
      signal: options.signal,
    });
    const failed = run.requirements.filter((r) => r.status === "fail").map((r) => r.id);
    const declared = mutant?.breaks ?? [];
    const missed = declared.filter((id) => !failed.includes(id));
    const collateral = failed.filter((id) => !declared.includes(id));
    const errors = run.results.filter((c) => c.status === "error").map((c) => `${c.id}: ${c.reason ?? "error"}`);
    const allPass = run.results.every((c) => c.status === "pass");
    const ok = mutant ? missed.length === 0 && collateral.length === 0 && errors.length === 0 : allPass && run.verdict === "compliant";
    if (!mutant && !allPass) {
      for (const c of run.results.filter((r) => r.status !== "pass" && r.status !== "error")) errors.push(`${c.id}: ${c.status}${c.failures[0] ? ` (${c.failures[0].requirement}: expected ${c.failures[0].expected}, got ${c.failures[0].actual})` : c.reason ? ` (${c.reason})` : ""}`);
    }
    return {
      partner: mutant?.name ?? "reference",
      description: mutant?.description ?? "the compliant reference partner",
      declared, failed, missed, collateral, errors, verdict: run.verdict, durationMs: Date.now() - started, ok,
    };
  } finally {
    await partner.stop();
  }
}

export async function runSelftest(options: SelftestOptions): Promise<{ rows: SelftestRow[]; ok: boolean }> {
  const rows: SelftestRow[] = [];
  for (const mutant of [undefined, ...(options.mutants ?? MUTANTS)]) {
    if (options.signal?.aborted) break;
    const row = await runAgainst(options, mutant);
    rows.push(row);
    options.onRow?.(row);
  }
  return { rows, ok: rows.length === 1 + (options.mutants ?? MUTANTS).length && rows.every((r) => r.ok) };
}
