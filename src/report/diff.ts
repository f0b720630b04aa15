// `chatconform diff OLD NEW`: what changed between two reports, case by case and requirement by
// requirement. Pure: the CLI reads the files, prints and decides the exit code.
import type { Level, Verdict } from "../checks/model.ts";
import type { AggregateStatus } from "../checks/verdict.ts";
import type { ReportDocument } from "./stats.ts";

export type DiffKind = "case" | "requirement";

/** In NEW, a case or requirement that OLD had and NEW does not (the catalogue or the profile changed). */
export type DiffStatus = AggregateStatus | "missing";

/** One case or requirement whose status differs between the two reports. */
export interface StatusChange {
  kind: DiffKind;
  id: string;
  level: Level;
  old: AggregateStatus;
  new: DiffStatus;
  /** A regression that is lost coverage: it passed and is now skip, not-tested, uncovered or missing. */
  coverageLost?: true;
}

/** A case or requirement only one of the two reports has (the catalogue or the profile changed). */
export interface Presence {
  kind: DiffKind;
  id: string;
  level: Level;
  status: AggregateStatus;
}

export interface RunSide {
  file: string;
  verdict: Verdict;
  suite: string;
  endpoint: string;
  policy: string;
  mutant?: string;
  startedAt: string;
  caseSetSha256: string;
}

export interface ReportDiff {
  old: RunSide;
  new: RunSide;
  /**
   * It passed and now does not: fail or error, or lost coverage (skip, not-tested, uncovered, or
   * missing from NEW, which is then also in `removed`). Any of these makes `regression` true.
   */
  regressed: StatusChange[];
  /** fail, error or not-tested → pass. */
  fixed: StatusChange[];
  /** Every other change of status (skip → pass when a case was not selected before, fail → error, …). */
  changed: StatusChange[];
  /** In NEW only / in OLD only. */
  added: Presence[];
  removed: Presence[];
  unchanged: { cases: number; requirements: number };
  /** Every difference in what was run (suite, case set, endpoint, policy, mutant, selection). */
  context: string[];
  /**
   * The differences that make the two reports not comparable (a subset of `context`): another
   * suite or profile, another endpoint or policy, a case present in both whose file changed. The
   * CLI refuses such a diff (exit 3) unless --allow-different-context is given.
   */
  mismatches: string[];
  regression: boolean;
}

/** Statuses that mean the requirement (case) was not established where it passed before. */
const LOST_COVERAGE: ReadonlySet<DiffStatus> = new Set(["skip", "not-tested", "uncovered", "missing"]);

/**
 * The regression rule, for cases and requirements alike, whatever the level: it passed in OLD and
 * in NEW it is anything but pass. A fail or an error is a regression; so is losing the coverage
 * (skip, not-tested, uncovered, missing): a diff must not read as "no regression" when what passed
 * is simply no longer tested.
 */
export function isRegression(old: AggregateStatus, now: DiffStatus): boolean {
  return old === "pass" && now !== "pass";
}

/** Part of the regression rule: it passed and is now not tested at all. */
export function isCoverageLost(old: AggregateStatus, now: DiffStatus): boolean {
  return old === "pass" && LOST_COVERAGE.has(now);
}

function isFix(old: AggregateStatus, now: DiffStatus): boolean {
  return now === "pass" && (old === "fail" || old === "error" || old === "not-tested");
}

function side(file: string, doc: ReportDocument): RunSide {
  return {
    file, verdict: doc.verdict, suite: `${doc.suite.name} ${doc.suite.version}`, endpoint: doc.endpoint, policy: doc.run.policy,
    ...(doc.run.mutant !== undefined ? { mutant: doc.run.mutant } : {}), startedAt: doc.startedAt, caseSetSha256: doc.run.caseSetSha256,
  };
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The cases both reports have whose case file differs (by sha256): their statuses compare different checks. */
function changedCaseFiles(oldDoc: ReportDocument, newDoc: ReportDocument): string[] {
  const before = new Map(oldDoc.cases.map((c) => [c.id, c.sha256]));
  return newDoc.cases.filter((c) => before.has(c.id) && before.get(c.id) !== c.sha256).map((c) => c.id).sort();
}

export function diffReports(oldFile: string, oldDoc: ReportDocument, newFile: string, newDoc: ReportDocument): ReportDiff {
  const regressed: StatusChange[] = [];
  const fixed: StatusChange[] = [];
  const changed: StatusChange[] = [];
  const added: Presence[] = [];
  const removed: Presence[] = [];
  const unchanged = { cases: 0, requirements: 0 };

  const compare = (kind: DiffKind, olds: readonly { id: string; level: Level; status: AggregateStatus }[], news: readonly { id: string; level: Level; status: AggregateStatus }[]) => {
    const before = new Map(olds.map((x) => [x.id, x]));
    const after = new Map(news.map((x) => [x.id, x]));
    const classify = (change: StatusChange) => {
      if (isRegression(change.old, change.new)) regressed.push(isCoverageLost(change.old, change.new) ? { ...change, coverageLost: true } : change);
      else if (isFix(change.old, change.new)) fixed.push(change);
      else changed.push(change);
    };
    for (const x of [...news].sort(byId)) {
      const o = before.get(x.id);
      if (!o) {
        added.push({ kind, id: x.id, level: x.level, status: x.status });
        continue;
      }
      if (o.status === x.status) {
        unchanged[kind === "case" ? "cases" : "requirements"]++;
        continue;
      }
      // The level of the new report decides (a requirement promoted to MUST counts as MUST).
      classify({ kind, id: x.id, level: x.level, old: o.status, new: x.status });
    }
    for (const o of [...olds].sort(byId)) {
      if (after.has(o.id)) continue;
      removed.push({ kind, id: o.id, level: o.level, status: o.status });
      // What passed and is gone is lost coverage too (listed under Removed as well).
      if (o.status === "pass") classify({ kind, id: o.id, level: o.level, old: o.status, new: "missing" });
    }
  };
  compare("requirement", oldDoc.requirements, newDoc.requirements);
  compare("case", oldDoc.cases, newDoc.cases);

  const context: string[] = [];
  const mismatches: string[] = [];
  const note = (what: string, a: unknown, b: unknown, mismatch = false) => {
    if (a === b) return;
    const line = `${what}: ${a ?? "none"} → ${b ?? "none"}`;
    context.push(line);
    if (mismatch) mismatches.push(line);
  };
  note("suite", `${oldDoc.suite.name} ${oldDoc.suite.version}`, `${newDoc.suite.name} ${newDoc.suite.version}`, true);
  note("profile", `${oldDoc.profile.id}/${oldDoc.profile.version}`, `${newDoc.profile.id}/${newDoc.profile.version}`, true);
  // A case set with cases added or removed shows them as New / Removed (what passed and is gone is
  // a regression); a case both have whose file changed checks other things under the same id.
  note("case set (caseSetSha256)", oldDoc.run.caseSetSha256.slice(0, 12), newDoc.run.caseSetSha256.slice(0, 12));
  const edited = changedCaseFiles(oldDoc, newDoc);
  if (edited.length) {
    const line = `changed case file(s) (sha256): ${edited.length > 5 ? `${edited.slice(0, 5).join(", ")} and ${edited.length - 5} more` : edited.join(", ")}`;
    context.push(line);
    mismatches.push(line);
  }
  // The built-in partner listens on a new port in every run (its mutant is noted on its own).
  const endpoint = (d: ReportDocument) => (d.run.endpointDescription.startsWith("built-in reference partner") ? "the built-in reference partner" : d.endpoint);
  note("endpoint", endpoint(oldDoc), endpoint(newDoc), true);
  note("policy", oldDoc.run.policy, newDoc.run.policy, true);
  // A mutant is the built-in partner behaving differently: what a diff is for, so only a note.
  note("mutant", oldDoc.run.mutant, newDoc.run.mutant);
  note("selection", oldDoc.run.selection.filters.join(" ") || "all cases", newDoc.run.selection.filters.join(" ") || "all cases");

  return { old: side(oldFile, oldDoc), new: side(newFile, newDoc), regressed, fixed, changed, added, removed, unchanged, context, mismatches, regression: regressed.length > 0 };
}

function row(c: StatusChange): string {
  return `  ${c.kind === "case" ? "case       " : "requirement"} ${c.id}  ${c.kind === "requirement" ? `${c.level}  ` : ""}${c.old} → ${c.new}${c.coverageLost ? "  (coverage lost)" : ""}`;
}

/** The diff as text, section by section (what `chatconform diff` prints). */
export function formatDiff(d: ReportDiff): string[] {
  const lines: string[] = [];
  lines.push(`old: ${d.old.file}  ${d.old.verdict}  (${d.old.startedAt})`);
  lines.push(`new: ${d.new.file}  ${d.new.verdict}  (${d.new.startedAt})`);
  if (d.context.length) lines.push(`note: the runs differ in ${d.context.join("; ")}`);
  if (d.mismatches.length) lines.push(`note: compared across a different context (--allow-different-context): ${d.mismatches.join("; ")}`);
  const section = (title: string, items: string[]) => {
    lines.push("", `${title} (${items.length})${items.length ? ":" : ""}`);
    lines.push(...items);
  };
  section("Regressed", d.regressed.map(row));
  section("Fixed", d.fixed.map(row));
  section("Other changes", d.changed.map(row));
  const presence = (p: Presence) => `  ${p.kind === "case" ? "case       " : "requirement"} ${p.id}  ${p.kind === "requirement" ? `${p.level}  ` : ""}${p.status}`;
  section("New", d.added.map(presence));
  section("Removed", d.removed.map(presence));
  lines.push("", `Unchanged: ${d.unchanged.cases} case(s), ${d.unchanged.requirements} requirement(s)`);
  lines.push(`Verdict: ${d.old.verdict} → ${d.new.verdict}`);
  const cases = d.regressed.filter((c) => c.kind === "case").length;
  const lost = d.regressed.filter((c) => c.coverageLost).length;
  lines.push(d.regression ? `REGRESSION: ${cases} case(s) and ${d.regressed.length - cases} requirement(s) passed before and do not now${lost ? ` (${lost} of them coverage lost: no longer tested)` : ""}` : "no regression");
  return lines;
}
