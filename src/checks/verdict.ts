// From case results to requirement statuses, the run summary and the verdict (profile brief §12).
// Pure functions: no I/O, no printing; the CLI maps the verdict to an exit code with exitCodeFor.
import type { CaseResult, Level, Requirement, RequirementResult, RequirementStatus, RunSummary, Verdict } from "./model.ts";

/** A requirement's status in a run; `uncovered` means no case of the catalogue covers it. */
export type AggregateStatus = RequirementStatus | "uncovered";

/** RequirementResult with the extra `uncovered` status; `cases` lists the covering case ids. */
export interface AggregatedRequirement extends Omit<RequirementResult, "status"> {
  status: AggregateStatus;
}

/** What the verdict needs of a case: its status, failures, and which requirements its checks were on. */
type CaseOutcome = Pick<CaseResult, "id" | "requirements" | "status" | "failures"> & {
  checks: readonly { requirement: string; ok: boolean }[];
};

/** The status of one requirement from the cases that cover it (rules in order; the first that applies wins). */
export function requirementStatus(id: string, covering: readonly CaseOutcome[]): AggregateStatus {
  if (covering.length === 0) return "uncovered";
  // A failed check on this requirement, whatever else happened in the case.
  if (covering.some((c) => c.failures.some((f) => f.requirement === id))) return "fail";
  if (covering.some((c) => c.status === "error")) return "error";
  // A case that failed on another requirement stopped before this one was established.
  if (covering.some((c) => c.status === "not-tested" || c.status === "fail")) return "not-tested";
  if (covering.every((c) => c.status === "skip")) return "skip";
  // Listing a requirement is not testing it: a passing case must have made a passing check on it
  // (some cases check a requirement only under one policy, or only on one branch).
  if (covering.some((c) => c.status === "pass" && c.checks.some((k) => k.requirement === id && k.ok))) return "pass";
  return "not-tested";
}

/** One row per requirement, in the order given. */
export function aggregateRequirements(requirements: readonly Requirement[], cases: readonly CaseOutcome[]): AggregatedRequirement[] {
  const byRequirement = new Map<string, CaseOutcome[]>();
  for (const c of cases) {
    for (const id of new Set(c.requirements)) {
      const list = byRequirement.get(id);
      if (list) list.push(c);
      else byRequirement.set(id, [c]);
    }
  }
  return requirements.map((r) => {
    const covering = byRequirement.get(r.id) ?? [];
    return { id: r.id, level: r.level, text: r.text, source: r.source, status: requirementStatus(r.id, covering), cases: covering.map((c) => c.id) };
  });
}

const NOT_ESTABLISHED: ReadonlySet<AggregateStatus> = new Set(["fail", "error", "not-tested"]);

/**
 * non-compliant: a MUST fails. incomplete: the run was cut short, or a MUST is error / not-tested /
 * uncovered (no case in the catalogue: "compliant" must mean every MUST was tested).
 * compliant-with-warnings: a SHOULD/MAY is fail / error / not-tested. Otherwise compliant.
 * `skip` (filtered out) never changes the verdict, nor does an uncovered SHOULD/MAY.
 */
export function computeVerdict(reqResults: readonly { level: Level; status: AggregateStatus }[], run: { incomplete: boolean }): Verdict {
  const must = reqResults.filter((r) => r.level === "MUST");
  if (must.some((r) => r.status === "fail")) return "non-compliant";
  if (run.incomplete || must.some((r) => r.status === "error" || r.status === "not-tested" || r.status === "uncovered")) return "incomplete";
  if (reqResults.some((r) => r.level !== "MUST" && NOT_ESTABLISHED.has(r.status))) return "compliant-with-warnings";
  return "compliant";
}

export function summarize(cases: readonly Pick<CaseResult, "status">[]): RunSummary {
  const summary: RunSummary = { total: cases.length, pass: 0, fail: 0, error: 0, notTested: 0, skip: 0 };
  for (const c of cases) {
    if (c.status === "not-tested") summary.notTested++;
    else summary[c.status]++;
  }
  return summary;
}

/** 0 compliant (with or without warnings), 1 non-compliant, 2 incomplete. */
export function exitCodeFor(verdict: Verdict): 0 | 1 | 2 {
  switch (verdict) {
    case "compliant":
    case "compliant-with-warnings":
      return 0;
    case "non-compliant":
      return 1;
    case "incomplete":
      return 2;
  }
}
