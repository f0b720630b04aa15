// The Markdown reporter: a short summary for a pull-request comment or a CI step summary
// ($GITHUB_STEP_SUMMARY, a GitLab MR note): the verdict, the counts, and every requirement that
// failed or was not established with a one-line reason. Every value from the report is escaped:
// reasons quote stanzas, and a stanza is attacker-controlled text.
import type { Verdict } from "../checks/model.ts";
import { exitLine, outcomeLine } from "./expect.ts";
import type { AggregateStatus } from "../checks/verdict.ts";
import { REQUIREMENT_STATUSES, VERDICT_TEXT, formatDuration, oneLine, requirementReason, runDurationMs, showControls } from "./document.ts";
import type { ReportDocument } from "./document.ts";

export const MARKDOWN_FILE_NAME = "report.md";

export interface MarkdownOptions {
  /** Rows per table at most (default 50); the rest is counted, not listed. */
  max?: number;
  /** A line at the end pointing at the full report (a path), e.g. "reports/2025-…/report.html". */
  reportPath?: string;
}

const VERDICT_MARK: Record<Verdict, string> = {
  compliant: "✅",
  "compliant-with-warnings": "⚠️",
  incomplete: "⏸️",
  "non-compliant": "❌",
};

/**
 * Text safe in a Markdown paragraph or table cell: HTML metacharacters as entities, Markdown
 * punctuation backslash-escaped, line breaks flattened, and an @mention defused (a zero-width space
 * after the @), so quoted stanzas neither render as HTML nor notify anyone.
 */
export function mdText(text: string, max = 300): string {
  return oneLine(showControls(text), max)
    .replace(/[\\`*_[\]|~#!]/g, (c) => `\\${c}`)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/(^|[^\w])@(?=\w)/g, "$1@\u200b");
}

/** An inline code span for an identifier (backticks removed: a code span cannot escape them). */
function code(text: string): string {
  return `\`${oneLine(showControls(text), 200).replace(/`/g, "'")}\``;
}

const STATUS_LABEL: Record<AggregateStatus, string> = { pass: "pass", fail: "fail", error: "error", "not-tested": "not tested", skip: "skip", uncovered: "uncovered" };

/** The Markdown summary of a report document. */
export function renderMarkdown(doc: ReportDocument, options: MarkdownOptions = {}): string {
  const max = options.max ?? 50;
  const out: string[] = [];
  out.push(`## ${VERDICT_MARK[doc.verdict]} ${mdText(`${doc.profile.id}/${doc.profile.version}`)} conformance: **${doc.verdict}**`);
  out.push("");
  const duration = runDurationMs(doc);
  const facts = [
    `${mdText(VERDICT_TEXT[doc.verdict].replace(/^./, (ch) => ch.toUpperCase()))}.`,
    `Endpoint ${code(doc.endpoint)}${doc.run.endpointDescription ? ` (${mdText(doc.run.endpointDescription)})` : ""}`,
    `policy ${code(doc.run.policy)}`,
    ...(doc.run.mutant ? [`mutant ${code(doc.run.mutant)}`] : []),
    ...(doc.run.selection.shard ? [`shard ${doc.run.selection.shard.index}/${doc.run.selection.shard.count}`] : []),
    `${mdText(doc.suite.name)} ${mdText(doc.suite.version)}`,
    `${mdText(doc.startedAt)}${duration !== undefined ? ` (${formatDuration(duration)})` : ""}`,
  ];
  out.push(facts.join(" · "));
  if (doc.incomplete) {
    out.push("");
    out.push(`**Run incomplete:** ${mdText(doc.incompleteReason ?? "not every selected case ran")}`);
  }
  out.push("");

  const s = doc.summary;
  const reqCount = (status: AggregateStatus) => doc.requirements.filter((r) => r.status === status).length;
  out.push("| | total | pass | fail | error | not tested | skip | uncovered |");
  out.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  out.push(`| cases | ${s.total} | ${s.pass} | ${s.fail} | ${s.error} | ${s.notTested} | ${s.skip} | |`);
  out.push(`| requirements | ${doc.requirements.length} | ${REQUIREMENT_STATUSES.map(reqCount).join(" | ")} |`);

  const table = (title: string, rows: ReportDocument["requirements"], withStatus: boolean) => {
    if (!rows.length) return;
    out.push("");
    out.push(`### ${title} (${rows.length})`);
    out.push("");
    out.push(withStatus ? "| requirement | level | status | case | reason |" : "| requirement | level | case | reason |");
    out.push(withStatus ? "|---|---|---|---|---|" : "|---|---|---|---|");
    for (const r of rows.slice(0, max)) {
      const why = requirementReason(doc, r.id);
      const cells = [`**${mdText(r.id)}**`, r.level, ...(withStatus ? [STATUS_LABEL[r.status]] : []), why.caseId ? code(why.caseId) : "", mdText(why.text)];
      out.push(`| ${cells.join(" | ")} |`);
    }
    if (rows.length > max) out.push(`\n…and ${rows.length - max} more (see the full report).`);
  };
  const failed = doc.requirements.filter((r) => r.status === "fail");
  table("Failing requirements", [...failed.filter((r) => r.level === "MUST"), ...failed.filter((r) => r.level !== "MUST")], false);
  table("Not established (error or not tested)", doc.requirements.filter((r) => r.status === "error" || r.status === "not-tested"), true);

  if (doc.expectations) {
    // A CI job can exit 0 on a non-compliant run when every failure is a known one: say so here.
    const record = doc.expectations;
    out.push("");
    out.push(`### Known failures (${mdText(record.file)})`);
    out.push("");
    out.push(`${mdText(outcomeLine(record))}. ${mdText(exitLine(doc))}.`);
    const shown = record.entries.filter((e) => e.outcome !== "unmatched");
    if (shown.length) {
      out.push("");
      out.push("| id | outcome | reason | until |");
      out.push("|---|---|---|---|");
      for (const e of shown.slice(0, max)) out.push(`| ${code(e.id)} | ${e.outcome} | ${mdText(e.reason)} | ${e.until ? mdText(e.until) : ""} |`);
    }
  }
  if (doc.uncovered.length) {
    out.push("");
    out.push(`Uncovered (no case in the catalogue; an uncovered MUST makes the run incomplete): ${doc.uncovered.map((id) => mdText(id)).join(", ")}`);
  }
  if (options.reportPath) {
    out.push("");
    out.push(`Full report: ${code(options.reportPath)}`);
  }
  return `${out.join("\n")}\n`;
}

