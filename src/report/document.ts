// What every document reporter (JUnit, HTML, Markdown, and `report render`) shares: the report
// document prepared for rendering (a plain, secret-free copy), and small pure helpers on it.
import type { CaseStatus, TranscriptEntry, Verdict } from "../checks/model.ts";
import type { AggregateStatus } from "../checks/verdict.ts";
import { redactSecrets } from "./json.ts";
import type { ReportCase, ReportDocument, ReportFailure } from "./stats.ts";

export type { ReportCase, ReportDocument, ReportFailure };

/** The case statuses in the order reporters list them. */
export const CASE_STATUSES: readonly CaseStatus[] = ["pass", "fail", "error", "not-tested", "skip"];
/** The requirement statuses in the order reporters list them. */
export const REQUIREMENT_STATUSES: readonly AggregateStatus[] = ["pass", "fail", "error", "not-tested", "skip", "uncovered"];

export const VERDICT_TEXT: Record<Verdict, string> = {
  compliant: "every covered MUST requirement passes",
  "compliant-with-warnings": "every covered MUST requirement passes; some SHOULD/MAY requirements do not",
  incomplete: "a MUST requirement could not be tested, or the run was cut short",
  "non-compliant": "a MUST requirement fails",
};

/**
 * The document a reporter renders: a plain JSON copy (as report.json holds it) with every secret
 * redacted, whatever the caller passes. Live reporters and `report render` both go through here.
 */
export function prepareDocument(doc: ReportDocument, secrets: readonly string[] = []): ReportDocument {
  return redactSecrets(JSON.parse(JSON.stringify(doc)) as ReportDocument, secrets);
}

/**
 * Characters XML 1.0 cannot carry at all, even escaped (C0 controls other than tab/LF/CR, lone
 * surrogates, U+FFFE/U+FFFF), which no renderer should pass on raw either (HTML and Markdown
 * show them as mojibake or not at all). A report may hold any of them: reasons and stanzas come
 * from the endpoint.
 */
const INVISIBLE = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** `text` with every such character shown as [U+XXXX]. */
export function showControls(text: string): string {
  return text.replace(INVISIBLE, (ch) => `[U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`);
}

/** Wall time of the run in milliseconds, or undefined when the timestamps do not say. */
export function runDurationMs(doc: Pick<ReportDocument, "startedAt" | "finishedAt">): number | undefined {
  const ms = Date.parse(doc.finishedAt) - Date.parse(doc.startedAt);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** "42 ms", "1.3 s", "2 min 5 s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Whitespace (newlines included) collapsed to single spaces, then cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1))}…`;
}

/** "ENC-10: expected exactly one receipt; actual: 2 receipts". */
export function failureLine(f: ReportFailure, max = 300): string {
  return oneLine(`${f.requirement}: expected ${f.expected}; actual: ${f.actual}`, max);
}

/** Why a case did not pass, in one line: its first failure, or its reason. */
export function caseReason(c: ReportCase, max = 300): string {
  if (c.failures.length) return failureLine(c.failures[0]!, max) + (c.failures.length > 1 ? ` (+${c.failures.length - 1} more)` : "");
  return oneLine(c.reason ?? (c.status === "pass" ? "passed" : "no reason given"), max);
}

/**
 * Why a requirement is not established, in one line: the first failure on it in its cases, else
 * the reason of the first case of its that did not pass.
 */
export function requirementReason(doc: ReportDocument, requirementId: string, max = 300): { caseId?: string; text: string } {
  const covering = doc.cases.filter((c) => c.requirements.includes(requirementId));
  for (const c of covering) {
    const f = c.failures.find((x) => x.requirement === requirementId);
    if (f) return { caseId: c.id, text: oneLine(`expected ${f.expected}; actual: ${f.actual}`, max) };
  }
  const other = covering.find((c) => c.status === "error" || c.status === "not-tested") ?? covering.find((c) => c.status === "fail");
  if (!other) return { text: covering.length ? "not established" : "no case covers it" };
  if (other.status === "fail") return { caseId: other.id, text: oneLine(`the case failed first on ${other.failures.map((f) => f.requirement).join(", ") || "another check"}`, max) };
  return { caseId: other.id, text: oneLine(`${other.status}: ${other.reason ?? "no reason given"}`, max) };
}

/** One transcript entry as plain text lines: "#2 +120 ms alice ← …" then the decrypted payload. */
export function transcriptLines(e: TranscriptEntry): string[] {
  const arrow = e.direction === "in" ? "←" : "→";
  const lines = [`#${e.seq} +${Math.round(e.t)} ms ${e.actor} ${arrow}${e.note ? ` (${e.note})` : ""} ${e.xml}`];
  if (e.decrypted !== undefined) lines.push(`    decrypted: ${e.decrypted}`);
  return lines;
}

/**
 * A transcript excerpt for a case: the evidence of its failures with up to `context` entries on
 * either side, or the last `tail` entries when nothing is cited; "…" marks what is left out.
 */
export function transcriptExcerpt(c: ReportCase, opts: { context?: number; tail?: number; maxChars?: number } = {}): string {
  const context = opts.context ?? 2;
  const tail = opts.tail ?? 12;
  const maxChars = opts.maxChars ?? 8000;
  const entries = c.transcript;
  if (entries.length === 0) return "";
  const cited = new Set(c.failures.flatMap((f) => f.evidence));
  const keep = new Set<number>();
  entries.forEach((e, i) => {
    if (cited.has(e.seq)) for (let j = Math.max(0, i - context); j <= Math.min(entries.length - 1, i + context); j++) keep.add(j);
  });
  if (keep.size === 0) for (let j = Math.max(0, entries.length - tail); j < entries.length; j++) keep.add(j);
  const out: string[] = [];
  let last = -1;
  for (let i = 0; i < entries.length; i++) {
    if (!keep.has(i)) continue;
    if (i !== last + 1) out.push("…");
    out.push(...transcriptLines(entries[i]!));
    last = i;
  }
  if (last !== entries.length - 1) out.push("…");
  let text = out.join("\n");
  if (text.length > maxChars) text = `${text.slice(0, maxChars)}\n… [${text.length - maxChars} more characters; the full transcript is in report.json]`;
  return text;
}
