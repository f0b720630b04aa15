// `chatconform diff OLD.json NEW.json [--json] [--allow-different-context]`: newly failing, newly
// passing, new and removed cases and requirements. Exit codes as EXIT in program.ts: 0 no
// regression, 1 something that passed no longer does (fails, errors, or is no longer tested),
// 3 misuse (a file that cannot be read or is not a report.json) or reports that are not comparable
// (another endpoint, policy, suite or profile, a changed case file) without --allow-different-context.
import { readFileSync } from "node:fs";
import { diffReports, formatDiff } from "../report/diff.ts";
import type { ReportDocument } from "../report/document.ts";
import { validateReport } from "../report/json.ts";

const EXIT_OK = 0;
const EXIT_REGRESSION = 1;
const EXIT_BAD_INPUT = 3;

export interface CommandIo {
  out: (line?: string) => void;
  err: (line?: string) => void;
}

/** A report.json read and checked against the schema, or every reason it is not one (`file: path: message`). */
export function readReport(file: string): { doc: ReportDocument } | { problems: string[] } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return { problems: [`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`] };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { problems: [`${file}: not JSON: ${(e as Error).message}`] };
  }
  const problems = validateReport(doc);
  if (problems.length) return { problems: [...problems.map((p) => `${file}: ${p}`), `${file}: ${problems.length} problem(s): not a chatconform report.json`] };
  return { doc: doc as ReportDocument };
}

export interface DiffFlags {
  json?: boolean;
  /** Compare reports of another endpoint, policy, suite, profile or changed case files anyway. */
  allowDifferentContext?: boolean;
}

export function diffCommand(oldFile: string, newFile: string, flags: DiffFlags, io: CommandIo): number {
  const a = readReport(oldFile);
  const b = readReport(newFile);
  const problems = [...("problems" in a ? a.problems : []), ...("problems" in b ? b.problems : [])];
  if (problems.length || !("doc" in a) || !("doc" in b)) {
    for (const p of problems) io.err(p);
    return EXIT_BAD_INPUT;
  }
  const diff = diffReports(oldFile, a.doc, newFile, b.doc);
  if (diff.mismatches.length && !flags.allowDifferentContext) {
    io.err(`chatconform diff: ${oldFile} and ${newFile} are not comparable; they differ in:`);
    for (const m of diff.mismatches) io.err(`  ${m}`);
    io.err("a status that changed could be the other context, not a regression or a fix: compare reports of one endpoint, policy, suite and case set, or pass --allow-different-context to diff them anyway");
    return EXIT_BAD_INPUT;
  }
  if (flags.json) io.out(JSON.stringify(diff, null, 2));
  else for (const line of formatDiff(diff)) io.out(line);
  return diff.regression ? EXIT_REGRESSION : EXIT_OK;
}
