// Known failures (`run --expect FILE`): the list, its validation, what became of each entry in a
// run, and the exit code it leads to. The verdict of a report never changes: verdict.ts computes it
// from the cases alone (and `verify` recomputes it). Only the exit code (and the console summary)
// take the list into account. Pure functions apart from loadExpectations, which reads the file.
//
// The file (YAML):
//
//   format: 1
//   expected:
//     encryption/bundle-100-prekeys:            # a case id …
//       reason: "prekey upload capped at 50, partner ticket #123"
//       until: 2026-03-31                       # optional: excuses up to and including this date (UTC)
//     MED-10:                                   # … or a requirement id
//       reason: "upload slots on HTTP in staging"
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import { parse as parseYaml } from "yaml";
import type { CaseStatus, Level } from "../checks/model.ts";
import { computeVerdict, exitCodeFor } from "../checks/verdict.ts";
import type { AggregateStatus } from "../checks/verdict.ts";

export const EXPECTATIONS_FORMAT = 1;

export type ExpectationKind = "case" | "requirement";

/** One known failure as the file lists it. */
export interface Expectation {
  id: string;
  kind: ExpectationKind;
  reason: string;
  /** YYYY-MM-DD: the entry excuses failures in runs started (UTC) on or before this day. */
  until?: string;
}

/** The list as loaded: where it came from and its entries, in file order. */
export interface ExpectationList {
  file: string;
  entries: Expectation[];
}

/**
 * - expected-and-failed: the case (requirement) failed, as listed; it is excused.
 * - unexpectedly-passed: it passed; the entry is stale ("remove it from the list") and the exit is 1.
 * - expired: its `until` is before the run's day; it excuses nothing, whatever the status.
 * - unmatched: it neither failed nor passed in this run (not selected, another shard, error,
 *   not-tested, uncovered, or a requirement that passed in only some of its cases).
 */
export type ExpectationOutcome = "expected-and-failed" | "unexpectedly-passed" | "expired" | "unmatched";

export interface ExpectationResult extends Expectation {
  outcome: ExpectationOutcome;
  /** The case's or requirement's status in the run; absent when the report does not have it. */
  status?: AggregateStatus;
  /** Why, in one line. */
  detail: string;
}

/** `expectations` in report.json: the list and what became of it in this run. */
export interface ExpectationsRecord {
  /** The file as given on the command line. */
  file: string;
  /** The day (UTC, YYYY-MM-DD) the `until` dates were compared with: the day the run started. */
  date: string;
  entries: ExpectationResult[];
  /**
   * Requirements that do not pass and that the list excuses entirely (counted as passing for the
   * exit code): their failure or not-tested status comes from known failures only. A row the list
   * excuses only in part (an excused failure beside another case's error) is not here.
   */
  excused: string[];
}

/** A bad --expect file: every problem as `path: message`, exit 3. */
export class ExpectationsError extends Error {
  constructor(readonly problems: string[], readonly source: string) {
    super(`${source}: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ExpectationsError";
  }
}

const CASE_ID = /^[a-z]+\/[a-z0-9-]+$/;
const REQUIREMENT_ID = /^[A-Z]{3}-\d{2}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

const schema = {
  type: "object",
  additionalProperties: false,
  required: ["format", "expected"],
  properties: {
    format: { const: EXPECTATIONS_FORMAT },
    expected: {
      type: "object",
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        required: ["reason"],
        properties: {
          reason: { type: "string", pattern: "\\S" },
          until: { type: "string", pattern: DAY.source },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateFile = ajv.compile(schema);

/** A JSON pointer as a dotted path; keys keep their slashes (expected.encryption/text-roundtrip.reason). */
function where(pointer: string, extra?: string): string {
  const parts = pointer ? pointer.slice(1).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~")) : [];
  if (extra !== undefined) parts.push(extra);
  return parts.length ? parts.join(".") : "(file)";
}

function describe(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties":
      return `${where(e.instancePath)}: unknown key "${String(params.additionalProperty)}"`;
    case "required":
      return `${where(e.instancePath, String(params.missingProperty))}: required`;
    case "const":
      return `${where(e.instancePath)}: must be ${JSON.stringify(params.allowedValue)}`;
    case "pattern":
      if (e.instancePath.endsWith("/until")) return `${where(e.instancePath)}: must be a date YYYY-MM-DD`;
      if (e.instancePath.endsWith("/reason")) return `${where(e.instancePath)}: must say why (not empty)`;
      return `${where(e.instancePath)}: ${e.message ?? e.keyword}`;
    default:
      return `${where(e.instancePath)}: ${e.message ?? e.keyword}`;
  }
}

function isRealDay(day: string): boolean {
  const t = Date.parse(`${day}T00:00:00Z`);
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === day;
}

/**
 * Check a parsed list against the schema and the catalogue (ids must name a case or a requirement
 * that exists) and return its entries; every problem at once.
 */
export function normaliseExpectations(data: unknown, options: { source: string; caseIds: Iterable<string>; requirementIds: Iterable<string> }): ExpectationList {
  const problems = validateFile(data) ? [] : (validateFile.errors ?? []).map(describe);
  const cases = new Set(options.caseIds);
  const requirements = new Set(options.requirementIds);
  const entries: Expectation[] = [];
  const expected = (data as { expected?: unknown } | null)?.expected;
  // The ids and dates are checked even when the shape is wrong elsewhere: every problem at once.
  const listed = expected && typeof expected === "object" && !Array.isArray(expected) ? Object.entries(expected as Record<string, unknown>) : [];
  for (const [id, value] of listed) {
    const path = `expected.${id}`;
    let kind: ExpectationKind | undefined;
    if (REQUIREMENT_ID.test(id)) {
      if (requirements.has(id)) kind = "requirement";
      else problems.push(`${path}: no requirement has this id (see chatconform requirements)`);
    } else if (CASE_ID.test(id)) {
      if (cases.has(id)) kind = "case";
      else problems.push(`${path}: no case has this id (see chatconform list)`);
    } else problems.push(`${path}: is neither a case id (area/slug) nor a requirement id (ABC-01)`);
    const entry = (value && typeof value === "object" ? value : {}) as { reason?: unknown; until?: unknown };
    if (typeof entry.until === "string" && DAY.test(entry.until) && !isRealDay(entry.until)) problems.push(`${path}.until: ${entry.until} is not a date`);
    if (kind && typeof entry.reason === "string") entries.push({ id, kind, reason: entry.reason.trim(), ...(typeof entry.until === "string" ? { until: entry.until } : {}) });
  }
  if (problems.length) throw new ExpectationsError(problems, options.source);
  return { file: options.source, entries };
}

/** Read, parse and check an --expect file. */
export function loadExpectations(file: string, options: { caseIds: Iterable<string>; requirementIds: Iterable<string> }): ExpectationList {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ExpectationsError([`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], file);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ExpectationsError([`not valid YAML: ${(err as Error).message.split("\n")[0]}`], file);
  }
  return normaliseExpectations(data ?? {}, { source: file, ...options });
}

/** What evaluation needs of a case. */
export interface CaseView {
  id: string;
  status: CaseStatus;
  reason?: string;
  failures: readonly { requirement: string }[];
  /** Every check the case made: a requirement passes only where a passing case checked it (verdict.ts). */
  checks: readonly { requirement: string; ok: boolean }[];
}

/** What evaluation needs of a requirement row. */
export interface RequirementView {
  id: string;
  level: Level;
  status: AggregateStatus;
  cases: readonly string[];
}

/** The UTC day of an ISO timestamp. */
export function dayOf(timestamp: string): string {
  const t = Date.parse(timestamp);
  return Number.isFinite(t) ? new Date(t).toISOString().slice(0, 10) : timestamp.slice(0, 10);
}

/**
 * What each requirement row that does not pass becomes once the known failures are set aside,
 * for the exit code (exitCodeWithExpectations). Kept beside the record, not in it: report.json's
 * `expectations` has a fixed shape (report.schema.json). A record without an entry here (one read
 * from a file) falls back to `excused` alone: an excused row counts as passing, any other keeps
 * its status, so the fallback can only be stricter, never hide an error.
 */
const residualStatuses = new WeakMap<ExpectationsRecord, ReadonlyMap<string, AggregateStatus>>();

/**
 * What became of each entry in a run, and which requirements the list excuses. An entry that has
 * not expired excuses: a failing case it names, and a failing case whose every failure is on a
 * requirement it names. For a requirement row that fails or is not-tested, the excused cases (and,
 * when the requirement is listed, the cases that failed on it) are set aside and the row is
 * computed again from its other covering cases: a failure on it that is not excused keeps it
 * `fail`, an `error` keeps it `error`, a `not-tested` case (or one that failed on something not
 * excused) keeps it `not-tested`; only when nothing else is in the way is it excused (counted as
 * passing). `error` is never excused, whichever case it is in.
 */
export function evaluateExpectations(list: ExpectationList, run: { cases: readonly CaseView[]; requirements: readonly RequirementView[]; startedAt: string }): ExpectationsRecord {
  const date = dayOf(run.startedAt);
  const caseById = new Map(run.cases.map((c) => [c.id, c]));
  const rowById = new Map(run.requirements.map((r) => [r.id, r]));
  const expired = (e: Expectation) => e.until !== undefined && e.until < date;

  const entries: ExpectationResult[] = list.entries.map((e) => {
    const base = { id: e.id, kind: e.kind, reason: e.reason, ...(e.until !== undefined ? { until: e.until } : {}) };
    const status = e.kind === "case" ? caseById.get(e.id)?.status : rowById.get(e.id)?.status;
    const known = status !== undefined ? { status } : {};
    if (expired(e)) return { ...base, outcome: "expired" as const, ...known, detail: `expired on ${e.until} (the run started ${date}): it excuses nothing${status ? `; ${status} in this run` : ""}` };
    if (status === undefined) return { ...base, outcome: "unmatched" as const, detail: `the report has no ${e.kind} ${e.id}` };
    if (status === "fail") return { ...base, outcome: "expected-and-failed" as const, status, detail: "failed, as expected" };
    if (e.kind === "case") {
      const c = caseById.get(e.id)!;
      if (status === "pass") return { ...base, outcome: "unexpectedly-passed" as const, status, detail: "passed: remove it from the list" };
      if (status === "skip") return { ...base, outcome: "unmatched" as const, status, detail: `not run: ${c.reason ?? "not selected"}` };
      return { ...base, outcome: "unmatched" as const, status, detail: `neither failed nor passed (${status}${c.reason ? `: ${c.reason}` : ""})` };
    }
    const row = rowById.get(e.id)!;
    if (status === "pass") {
      const notRun = row.cases.filter((id) => caseById.get(id)?.status === "skip").length;
      if (notRun > 0) return { ...base, outcome: "unmatched" as const, status, detail: `passed in the ${row.cases.length - notRun} of its ${row.cases.length} cases that ran; the others were not selected` };
      return { ...base, outcome: "unexpectedly-passed" as const, status, detail: "passed: remove it from the list" };
    }
    if (status === "skip") return { ...base, outcome: "unmatched" as const, status, detail: "none of its cases was selected" };
    if (status === "uncovered") return { ...base, outcome: "unmatched" as const, status, detail: "no case covers it" };
    return { ...base, outcome: "unmatched" as const, status, detail: `neither failed nor passed (${status})` };
  });

  const active = list.entries.filter((e) => !expired(e));
  const listedCases = new Set(active.filter((e) => e.kind === "case").map((e) => e.id));
  const listedRequirements = new Set(active.filter((e) => e.kind === "requirement").map((e) => e.id));
  const caseExcused = (c: CaseView) =>
    c.status === "fail" && (listedCases.has(c.id) || (c.failures.length > 0 && c.failures.every((f) => listedRequirements.has(f.requirement))));
  const excused: string[] = [];
  const residual = new Map<string, AggregateStatus>();
  for (const row of run.requirements) {
    if (row.status !== "fail" && row.status !== "not-tested") continue;
    const failedOn = (c: CaseView) => c.failures.some((f) => f.requirement === row.id);
    const listed = listedRequirements.has(row.id);
    // Set aside: excused cases, and the cases that failed (not errored) on this requirement when it is listed.
    const setAside = (c: CaseView) => caseExcused(c) || (listed && c.status === "fail" && failedOn(c));
    const covering = row.cases.map((id) => caseById.get(id));
    const others = covering.filter((c) => c === undefined || !setAside(c));
    // Nothing of it is a known failure: nothing to excuse (a listed requirement that did not fail is unmatched).
    if (!covering.some((c) => c !== undefined && (setAside(c) || (listed && failedOn(c))))) continue;
    // The row again from the cases left, in verdict.ts's order (a case the run does not have is not established).
    // Passing cases left must have checked it (listing is not testing); with none left, the excused
    // cases were all it had, and it is excused with them.
    const passing = others.filter((c): c is CaseView => c !== undefined && c.status === "pass");
    const checkedByOthers = passing.length === 0 || passing.some((c) => c.checks.some((k) => k.requirement === row.id && k.ok));
    const status: AggregateStatus =
      others.some((c) => c !== undefined && failedOn(c) && !listed) ? "fail"
        : others.some((c) => c?.status === "error") ? "error"
          : others.some((c) => c === undefined || c.status === "not-tested" || c.status === "fail") ? "not-tested"
            : checkedByOthers ? "pass" : "not-tested";
    if (status === "pass") excused.push(row.id);
    else if (status !== row.status) residual.set(row.id, status);
  }
  const record: ExpectationsRecord = { file: list.file, date, entries, excused };
  residualStatuses.set(record, residual);
  return record;
}

/**
 * A requirement's status for the exit code with the known failures set aside: `pass` when the list
 * excuses it, what is left when it excuses only part of it (an excused failure beside another
 * case's error stays `error`), its own status otherwise.
 */
export function statusWithExpectations(row: { id: string; status: AggregateStatus }, record: ExpectationsRecord | undefined): AggregateStatus {
  if (!record) return row.status;
  if (record.excused.includes(row.id)) return "pass";
  return residualStatuses.get(record)?.get(row.id) ?? row.status;
}

/** The entries of a record as the list they came from (to evaluate them again, e.g. on a merged report). */
export function listOf(record: ExpectationsRecord): ExpectationList {
  return { file: record.file, entries: record.entries.map((e) => ({ id: e.id, kind: e.kind, reason: e.reason, ...(e.until !== undefined ? { until: e.until } : {}) })) };
}

/**
 * The exit code of a run (or merged report), with its known failures taken into account.
 * Precedence: (1) an entry that passed unexpectedly makes it 1, whatever else; (2) otherwise the
 * verdict of verdict.ts is computed again with every excused requirement counted as passing (and a
 * partly excused one as what is left of it: statusWithExpectations), and mapped as usual: 1 when a MUST requirement still fails, 2 when one is still not established (or
 * the run is incomplete), 0 otherwise. Without a list this is exitCodeFor(verdict).
 */
export function exitCodeWithExpectations(doc: { requirements: readonly { id: string; level: Level; status: AggregateStatus }[]; incomplete: boolean; expectations?: ExpectationsRecord }): 0 | 1 | 2 {
  const rows = doc.requirements.map((r) => ({ level: r.level, status: statusWithExpectations(r, doc.expectations) }));
  if (doc.expectations?.entries.some((e) => e.outcome === "unexpectedly-passed")) return 1;
  return exitCodeFor(computeVerdict(rows, { incomplete: doc.incomplete }));
}

/** Entries counted by outcome. */
export function countOutcomes(record: ExpectationsRecord): Record<ExpectationOutcome, number> {
  const counts: Record<ExpectationOutcome, number> = { "expected-and-failed": 0, "unexpectedly-passed": 0, expired: 0, unmatched: 0 };
  for (const e of record.entries) counts[e.outcome]++;
  return counts;
}

/** "2 failed as expected, 1 passed (remove it from the list), 0 expired, 1 unmatched". */
export function outcomeLine(record: ExpectationsRecord): string {
  const n = countOutcomes(record);
  const passed = n["unexpectedly-passed"];
  return `${n["expected-and-failed"]} failed as expected, ${passed} passed${passed ? ` (remove ${passed === 1 ? "it" : "them"} from the list)` : ""}, ${n.expired} expired, ${n.unmatched} unmatched`;
}

/** What the exit code means next to the verdict, in one line (for the console and the CLI). */
export function exitLine(doc: Parameters<typeof exitCodeWithExpectations>[0] & { verdict: string }): string {
  const code = exitCodeWithExpectations(doc);
  const record = doc.expectations;
  if (!record) return `exit ${code}`;
  const stale = record.entries.filter((e) => e.outcome === "unexpectedly-passed").map((e) => e.id);
  if (stale.length) return `exit 1: ${stale.join(", ")} passed though listed as known failure${stale.length === 1 ? "" : "s"}: remove ${stale.length === 1 ? "it" : "them"} from the list (${record.file})`;
  const excusedMust = doc.requirements.filter((r) => r.level === "MUST" && record.excused.includes(r.id)).map((r) => r.id);
  const what = excusedMust.length ? `; excused MUST requirement(s): ${excusedMust.join(", ")}` : "";
  if (code === 0) return excusedMust.length ? `exit 0: every MUST failure is a known failure (the verdict stays ${doc.verdict})${what}` : "exit 0";
  if (code === 1) return `exit 1: a MUST requirement fails that ${record.file} does not excuse${what}`;
  return `exit 2: a MUST requirement is not established that ${record.file} does not excuse, or the run is incomplete${what}`;
}
