// `chatconform merge`: one report from the reports of runs that split the work (--shard i/n, or
// disjoint --case selections). Every case is taken from the report that ran it; requirements,
// summary and verdict are computed again with src/checks/verdict.ts, so a merged report is a
// report like any other (valid against the schema, `verify` agrees with its verdict). Reports that
// cannot belong to one run are refused with every reason at once. Pure: no I/O, no printing.
import { isDeepStrictEqual } from "node:util";
import type { Requirement } from "../checks/model.ts";
import { aggregateRequirements, computeVerdict, summarize } from "../checks/verdict.ts";
import { REPORT_FORMAT } from "./stats.ts";
import type { MergedRun, ReportCase, ReportDocument } from "./stats.ts";
import { evaluateExpectations, listOf } from "./expect.ts";

export interface MergeInput {
  /** Where the report came from, for messages. */
  file: string;
  doc: ReportDocument;
}

/** Reports that cannot be merged: every reason, exit 3. */
export class MergeError extends Error {
  constructor(readonly problems: string[]) {
    super(`cannot merge: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "MergeError";
  }
}

export interface MergeResult {
  doc: ReportDocument;
  /** Things worth saying that do not stop the merge (a missing shard, an incomplete input). */
  notes: string[];
}

/**
 * What makes two runs runs of the same endpoint: its URI, except for the built-in reference
 * partner, which listens on a new port in every run (its mutant is compared on its own).
 */
function endpointIdentity(doc: ReportDocument): string {
  if (doc.run.endpointDescription.startsWith("built-in reference partner")) return "the built-in reference partner";
  return `${doc.endpoint}${doc.run.config ? ` (domain ${doc.run.config.domain})` : ""}`;
}

const MAX_LISTED = 10;

function unique<T>(values: T[]): T[] {
  return values.filter((v, i) => values.findIndex((w) => isDeepStrictEqual(v, w)) === i);
}

/** Every input's value of `field` must equal the first input's; otherwise one problem naming both. */
function sameEverywhere(inputs: readonly MergeInput[], what: string, value: (doc: ReportDocument) => unknown, show: (v: unknown) => string, problems: string[]): void {
  const first = inputs[0]!;
  const expected = value(first.doc);
  for (const input of inputs.slice(1)) {
    const actual = value(input.doc);
    if (!isDeepStrictEqual(actual, expected)) problems.push(`${input.file}: ${what} ${show(actual)}, but ${first.file} has ${show(expected)}`);
  }
}

export function mergeReports(inputs: readonly MergeInput[], options: { command: string }): MergeResult {
  if (inputs.length === 0) throw new MergeError(["no report to merge"]);
  const problems: string[] = [];
  const notes: string[] = [];
  const text = (v: unknown) => (typeof v === "string" ? v : v === undefined ? "none" : JSON.stringify(v));

  // -- the same suite, profile, case set, policy and endpoint
  sameEverywhere(inputs, "was made by suite", (d) => `${d.suite.name} ${d.suite.version}`, text, problems);
  const commits = unique(inputs.map((i) => i.doc.suite.commit).filter((c) => c !== undefined && c !== "unknown"));
  if (commits.length > 1) problems.push(`the reports come from different suite commits (${commits.join(", ")}): run every part from one checkout`);
  sameEverywhere(inputs, "is for profile", (d) => `${d.profile.id}/${d.profile.version}`, text, problems);
  sameEverywhere(inputs, "ran a different case set: caseSetSha256", (d) => d.run.caseSetSha256, text, problems);
  sameEverywhere(inputs, "has different requirements", (d) => d.requirements.map((r) => `${r.id}:${r.level}`).join(","), () => "(see chatconform requirements)", problems);
  sameEverywhere(inputs, "ran under policy", (d) => d.run.policy, text, problems);
  sameEverywhere(inputs, "ran against endpoint", endpointIdentity, text, problems);
  sameEverywhere(inputs, "ran against mutant", (d) => d.run.mutant, text, problems);
  sameEverywhere(inputs, "has known failures (--expect)", (d) => (d.expectations ? listOf(d.expectations).entries : undefined), (v) => (v === undefined ? "none" : `${(v as unknown[]).length} entries`), problems);

  // -- shards: all or none, one split, each part once
  const sharded = inputs.filter((i) => i.doc.run.selection.shard);
  let missingShards: number[] = [];
  let overlappingShards = false;
  if (sharded.length > 0 && sharded.length < inputs.length) {
    problems.push(`${inputs.filter((i) => !i.doc.run.selection.shard).map((i) => i.file).join(", ")}: not a shard, but ${sharded[0]!.file} is: merge the shards of one split, or reports without --shard`);
  } else if (sharded.length > 0) {
    sameEverywhere(inputs, "is a shard of", (d) => `${d.run.selection.shard!.count} shards`, text, problems);
    sameEverywhere(inputs, "split a different selection:", (d) => d.run.selection.filters.join(" ") || "the whole catalogue", text, problems);
    const count = inputs[0]!.doc.run.selection.shard!.count;
    const byIndex = new Map<number, string[]>();
    for (const input of inputs) {
      const { index } = input.doc.run.selection.shard!;
      byIndex.set(index, [...(byIndex.get(index) ?? []), input.file]);
    }
    for (const [index, files] of [...byIndex].sort((a, b) => a[0] - b[0])) {
      if (files.length > 1) {
        overlappingShards = true;
        problems.push(`overlapping shards: ${files.join(" and ")} are ${files.length === 2 ? "both" : "all"} shard ${index}/${count}`);
      }
    }
    missingShards = Array.from({ length: count }, (_, k) => k + 1).filter((k) => !byIndex.has(k));
  }

  // -- every case from the report that ran it; a case that ran twice is an overlap
  const ids = [...new Set(inputs.flatMap((i) => i.doc.cases.map((c) => c.id)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const cases: ReportCase[] = [];
  const overlaps: string[] = [];
  for (const id of ids) {
    const found = inputs.flatMap((i) => i.doc.cases.filter((c) => c.id === id).map((c) => ({ file: i.file, c })));
    const ran = found.filter((f) => f.c.status !== "skip");
    if (ran.length > 1) overlaps.push(`case ${id} ran in ${ran.map((f) => f.file).join(" and ")}`);
    cases.push(structuredClone((ran[0] ?? found[0]!).c));
  }
  if (overlaps.length && !overlappingShards) {
    problems.push(...overlaps.slice(0, MAX_LISTED).map((o) => `overlapping reports: ${o}`));
    if (overlaps.length > MAX_LISTED) problems.push(`overlapping reports: and ${overlaps.length - MAX_LISTED} more case(s) that ran in more than one report`);
  }
  if (problems.length) throw new MergeError(problems);

  // -- the merged document, computed as a run computes it
  const first = inputs[0]!.doc;
  const requirements: Requirement[] = first.requirements.map((r) => ({ id: r.id, level: r.level, text: r.text, source: r.source }));
  // The report keeps failures without their (always false) `ok`; verdict.ts takes check results.
  const rows = aggregateRequirements(requirements, cases.map((c) => ({ id: c.id, requirements: c.requirements, status: c.status, checks: c.checks, failures: c.failures.map((f) => ({ ...f, ok: false })) })));
  const reasons: string[] = [];
  for (const input of inputs) if (input.doc.incomplete) reasons.push(`${input.file}: ${input.doc.incompleteReason ?? "incomplete"}`);
  if (missingShards.length) {
    const count = first.run.selection.shard!.count;
    const missing = missingShards.map((k) => `${k}/${count}`).join(", ");
    reasons.push(`shard ${missing} missing: its cases did not run`);
    notes.push(`shard ${missing} missing: the merged report is incomplete`);
  }
  for (const input of inputs) if (input.doc.incomplete) notes.push(`${input.file} is incomplete: ${input.doc.incompleteReason ?? "the run was cut short"}`);
  const incomplete = reasons.length > 0;
  const startedAt = inputs.map((i) => i.doc.startedAt).sort((a, b) => Date.parse(a) - Date.parse(b))[0]!;
  const finishedAt = inputs.map((i) => i.doc.finishedAt).sort((a, b) => Date.parse(b) - Date.parse(a))[0]!;
  const filters = unique(inputs.map((i) => i.doc.run.selection.filters));
  const seeds = unique(inputs.map((i) => i.doc.run.seed));
  const configs = unique(inputs.map((i) => i.doc.run.config));
  const tls = unique(inputs.map((i) => i.doc.run.tls));
  const commit = commits.length === 1 && inputs.every((i) => i.doc.suite.commit === commits[0]) ? commits[0]! : "unknown";
  const ordered = [...inputs].sort((a, b) => (a.doc.run.selection.shard?.index ?? 0) - (b.doc.run.selection.shard?.index ?? 0));
  const mergedFrom: MergedRun[] = ordered.map(({ doc }) => ({
    command: doc.run.command,
    endpoint: doc.endpoint,
    startedAt: doc.startedAt,
    finishedAt: doc.finishedAt,
    ...(doc.run.seed !== undefined ? { seed: doc.run.seed } : {}),
    ...(doc.run.selection.shard ? { shard: { ...doc.run.selection.shard } } : {}),
  }));
  const doc: ReportDocument = {
    format: REPORT_FORMAT,
    suite: { name: first.suite.name, version: first.suite.version, commit },
    profile: { ...first.profile },
    run: {
      command: options.command,
      node: unique(inputs.map((i) => i.doc.run.node)).join(", "),
      platform: unique(inputs.map((i) => i.doc.run.platform)).join(", "),
      caseSetSha256: first.run.caseSetSha256,
      selection: {
        total: first.run.selection.total,
        selected: inputs.reduce((n, i) => n + i.doc.run.selection.selected, 0),
        filters: filters.length === 1 ? [...filters[0]!] : [`merged: ${filters.map((f) => f.join(" ") || "all cases").join(" + ")}`],
      },
      ...(first.run.mutant !== undefined ? { mutant: first.run.mutant } : {}),
      policy: first.run.policy,
      endpointDescription: first.run.endpointDescription,
      ...(seeds.length === 1 && seeds[0] !== undefined ? { seed: seeds[0] } : {}),
      ...(configs.length === 1 && configs[0] !== undefined ? { config: structuredClone(configs[0]) } : {}),
      ...(tls.length === 1 && tls[0] !== undefined ? { tls: structuredClone(tls[0]) } : {}),
      mergedFrom,
    },
    endpoint: first.endpoint,
    startedAt,
    finishedAt,
    incomplete,
    ...(incomplete ? { incompleteReason: reasons.join("; ") } : {}),
    verdict: computeVerdict(rows, { incomplete }),
    summary: summarize(cases),
    requirements: rows,
    uncovered: rows.filter((r) => r.status === "uncovered").map((r) => r.id),
    ...(first.expectations ? { expectations: evaluateExpectations(listOf(first.expectations), { cases, requirements: rows, startedAt }) } : {}),
    cases,
  };
  return { doc, notes };
}
