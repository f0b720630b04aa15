// `chatconform diff OLD NEW`: what changed between two reports, case by case and requirement by
// requirement. Pure: the CLI reads the files, prints and decides the exit code.
import type { Level, Verdict } from "../checks/model.ts";
import type { AggregateStatus } from "../checks/verdict.ts";
import type { ReportDocument } from "./stats.ts";

export type DiffKind = "case" | "requirement";

/** One case or requirement whose status differs between the two reports. */
export interface StatusChange {
  kind: DiffKind;
  id: string;
  level: Level;
  old: AggregateStatus;
  new: AggregateStatus;
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
  /** pass → fail or error; and for MUST, pass → not-tested. Any of these makes `regression` true. */
  regressed: StatusChange[];
  /** fail, error or not-tested → pass. */
  fixed: StatusChange[];
  /** Every other change of status (skip → pass when a case was not selected before, fail → error, …). */
  changed: StatusChange[];
  /** In NEW only / in OLD only. */
  added: Presence[];
  removed: Presence[];
  unchanged: { cases: number; requirements: number };
  /** Differences in what was run (suite, case set, endpoint, policy, mutant), worth a look before trusting the rest. */
  context: string[];
  regression: boolean;
}

/** The regression rule, for cases and requirements alike. */
export function isRegression(level: Level, old: AggregateStatus, now: AggregateStatus): boolean {
  if (old !== "pass") return false;
  return now === "fail" || now === "error" || (level === "MUST" && now === "not-tested");
}

function isFix(old: AggregateStatus, now: AggregateStatus): boolean {
  return now === "pass" && (old === "fail" || old === "error" || old === "not-tested");
}

function side(file: string, doc: ReportDocument): RunSide {
  return {
    file, verdict: doc.verdict, suite: `${doc.suite.name} ${doc.suite.version}`, endpoint: doc.endpoint, policy: doc.run.policy,
    ...(doc.run.mutant !== undefined ? { mutant: doc.run.mutant } : {}), startedAt: doc.startedAt, caseSetSha256: doc.run.caseSetSha256,
  };
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

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
      const change: StatusChange = { kind, id: x.id, level: x.level, old: o.status, new: x.status };
      if (isRegression(x.level, o.status, x.status)) regressed.push(change);
      else if (isFix(o.status, x.status)) fixed.push(change);
      else changed.push(change);
    }
    for (const o of [...olds].sort(byId)) if (!after.has(o.id)) removed.push({ kind, id: o.id, level: o.level, status: o.status });
  };
  compare("requirement", oldDoc.requirements, newDoc.requirements);
  compare("case", oldDoc.cases, newDoc.cases);

  const context: string[] = [];
  const note = (what: string, a: unknown, b: unknown) => {
    if (a !== b) context.push(`${what}: ${a ?? "none"} → ${b ?? "none"}`);
  };
  note("suite", `${oldDoc.suite.name} ${oldDoc.suite.version}`, `${newDoc.suite.name} ${newDoc.suite.version}`);
  note("case set (caseSetSha256)", oldDoc.run.caseSetSha256.slice(0, 12), newDoc.run.caseSetSha256.slice(0, 12));
  // The built-in partner listens on a new port in every run (its mutant is noted on its own).
  const endpoint = (d: ReportDocument) => (d.run.endpointDescription.startsWith("built-in reference partner") ? "the built-in reference partner" : d.endpoint);
  note("endpoint", endpoint(oldDoc), endpoint(newDoc));
  note("policy", oldDoc.run.policy, newDoc.run.policy);
  note("mutant", oldDoc.run.mutant, newDoc.run.mutant);
  note("selection", oldDoc.run.selection.filters.join(" ") || "all cases", newDoc.run.selection.filters.join(" ") || "all cases");

  return { old: side(oldFile, oldDoc), new: side(newFile, newDoc), regressed, fixed, changed, added, removed, unchanged, context, regression: regressed.length > 0 };
}

function row(c: StatusChange): string {
  return `  ${c.kind === "case" ? "case       " : "requirement"} ${c.id}  ${c.kind === "requirement" ? `${c.level}  ` : ""}${c.old} → ${c.new}`;
}

/** The diff as text, section by section (what `chatconform diff` prints). */
export function formatDiff(d: ReportDiff): string[] {
  const lines: string[] = [];
  lines.push(`old: ${d.old.file}  ${d.old.verdict}  (${d.old.startedAt})`);
  lines.push(`new: ${d.new.file}  ${d.new.verdict}  (${d.new.startedAt})`);
  if (d.context.length) lines.push(`note: the runs differ in ${d.context.join("; ")}`);
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
  lines.push(d.regression ? `REGRESSION: ${cases} case(s) and ${d.regressed.length - cases} requirement(s) passed before and do not now` : "no regression");
  return lines;
}
