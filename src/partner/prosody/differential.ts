// The differential check of the two backends: two report.json files of the same catalogue, one
// against the in-process partner and one against the Prosody-backed partner, must agree case by
// case — status, every check (requirement, step, expectation, outcome), every failure — and
// requirement by requirement. Timings and deadlines differ, and so do the values a run draws at random (JIDs,
// stanza ids, device ids, ports): those are normalised away before comparing. What the endpoint
// actually sent (`actual`, transcripts) is not compared: two servers word their errors differently.
import { readFileSync } from "node:fs";

interface ReportCheck { requirement: string; step?: string; expected: string; ok: boolean }
interface ReportCase { id: string; status: string; checks?: ReportCheck[]; failures?: { requirement: string; step?: string; expected: string }[] }
export interface ComparableReport {
  verdict: string;
  requirements: { id: string; status: string }[];
  cases: ReportCase[];
}

export interface Difference {
  /** "run", a requirement id, or a case id. */
  where: string;
  what: string;
  a: string;
  b: string;
}

/** A value drawn at random by a run, replaced by a placeholder. */
export function normalise(text: string): string {
  return text
    // Slot URLs: each server names its own paths.
    .replace(/https?:\/\/[^\s"'<>]+/g, "<url>")
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<uuid>")
    .replace(/\b[0-9a-f]{16,}\b/gi, "<hex>")
    .replace(/\b[0-9a-f]{8}-\d+\b/g, "<stanza-id>")
    .replace(/(tpc-test-[a-z0-9-]*?)-[0-9a-f]{6}(?=@|\b)/g, "$1-<rand>")
    .replace(/tpc-nobody-[0-9a-f]+/g, "tpc-nobody-<rand>")
    .replace(/\/(dev\d+|reflector)-[0-9a-z]+/g, "/$1-<rand>")
    .replace(/(127\.0\.0\.1|localhost|\[::1\]):\d+/g, "$1:<port>")
    // Deadlines: the Prosody-backed partner gives answers twice the time (timings are not compared).
    .replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, "<time>")
    .replace(/\d{6,}/g, "<n>");
}

function checkKey(c: ReportCheck): string {
  return `${c.requirement} | ${c.step ?? ""} | ${normalise(c.expected)} | ${c.ok ? "ok" : "FAILED"}`;
}

/** The multiset difference a − b of two lists of keys. */
function minus(a: string[], b: string[]): string[] {
  const counts = new Map<string, number>();
  for (const k of b) counts.set(k, (counts.get(k) ?? 0) + 1);
  const out: string[] = [];
  for (const k of a) {
    const n = counts.get(k) ?? 0;
    if (n > 0) counts.set(k, n - 1);
    else out.push(k);
  }
  return out;
}

/** Every difference between two reports of the same catalogue, other than timings and random values. */
export function compareReports(a: ComparableReport, b: ComparableReport): Difference[] {
  const diffs: Difference[] = [];
  if (a.verdict !== b.verdict) diffs.push({ where: "run", what: "verdict", a: a.verdict, b: b.verdict });
  const reqB = new Map(b.requirements.map((r) => [r.id, r.status]));
  for (const r of a.requirements) {
    const other = reqB.get(r.id);
    if (other !== r.status) diffs.push({ where: r.id, what: "requirement status", a: r.status, b: other ?? "(absent)" });
    reqB.delete(r.id);
  }
  for (const [id, status] of reqB) diffs.push({ where: id, what: "requirement status", a: "(absent)", b: status });

  const casesB = new Map(b.cases.map((c) => [c.id, c]));
  for (const ca of a.cases) {
    const cb = casesB.get(ca.id);
    casesB.delete(ca.id);
    if (!cb) {
      diffs.push({ where: ca.id, what: "case", a: ca.status, b: "(absent)" });
      continue;
    }
    if (ca.status !== cb.status) diffs.push({ where: ca.id, what: "case status", a: ca.status, b: cb.status });
    const checksA = (ca.checks ?? []).map(checkKey);
    const checksB = (cb.checks ?? []).map(checkKey);
    for (const k of minus(checksA, checksB)) diffs.push({ where: ca.id, what: "check only in a", a: k, b: "" });
    for (const k of minus(checksB, checksA)) diffs.push({ where: ca.id, what: "check only in b", a: "", b: k });
    const failKey = (f: { requirement: string; expected: string }) => `${f.requirement} | ${normalise(f.expected)}`;
    const failA = (ca.failures ?? []).map(failKey);
    const failB = (cb.failures ?? []).map(failKey);
    for (const k of minus(failA, failB)) diffs.push({ where: ca.id, what: "failure only in a", a: k, b: "" });
    for (const k of minus(failB, failA)) diffs.push({ where: ca.id, what: "failure only in b", a: "", b: k });
  }
  for (const [id, cb] of casesB) diffs.push({ where: id, what: "case", a: "(absent)", b: cb.status });
  return diffs;
}

export function readReport(file: string): ComparableReport {
  return JSON.parse(readFileSync(file, "utf8")) as ComparableReport;
}

export function describeDifferences(diffs: Difference[], labels: [string, string] = ["a", "b"]): string {
  return diffs.map((d) => `${d.where}: ${d.what}: ${labels[0]} ${JSON.stringify(d.a)} / ${labels[1]} ${JSON.stringify(d.b)}`).join("\n");
}
