// `chatconform merge A.json B.json … [-o report.json]`: one report from the shards of a run (or
// from runs of disjoint selections). Exit codes as EXIT in program.ts: those of `run` for the
// merged report (0 compliant, 1 non-compliant, 2 incomplete, known failures taken into account as
// with --expect), 3 when a file is no report or the reports cannot be merged.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { exitCodeWithExpectations, exitLine, outcomeLine } from "../report/expect.ts";
import { serializeReport, validateReport } from "../report/json.ts";
import { MergeError, mergeReports } from "../report/merge.ts";
import type { MergeInput } from "../report/merge.ts";
import { readReport } from "./diff.ts";
import type { CommandIo } from "./diff.ts";

const EXIT_BAD_INPUT = 3;

export interface MergeFlags {
  /** A file, or - for stdout (default). */
  output?: string;
}

export interface MergeIo extends CommandIo {
  /** Raw text to stdout (no newline added). */
  write: (text: string) => void | Promise<void>;
  /** The command line, recorded as the merged report's run.command. */
  command: string;
}

export async function mergeCommand(files: string[], flags: MergeFlags, io: MergeIo): Promise<number> {
  const inputs: MergeInput[] = [];
  const problems: string[] = [];
  for (const file of files) {
    const read = readReport(file);
    if ("problems" in read) problems.push(...read.problems);
    else inputs.push({ file, doc: read.doc });
  }
  if (problems.length) {
    for (const p of problems) io.err(p);
    return EXIT_BAD_INPUT;
  }
  let merged;
  try {
    merged = mergeReports(inputs, { command: io.command });
  } catch (e) {
    if (e instanceof MergeError) {
      io.err(`chatconform merge: ${e.message}`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  const { doc, notes } = merged;
  // A merged report is a report: the schema holds for it as for a run's.
  const invalid = validateReport(doc);
  if (invalid.length) throw new Error(`the merged report is not valid: ${invalid.join("; ")}`);
  const text = serializeReport(doc);
  const output = flags.output ?? "-";
  if (output === "-") await io.write(text);
  else {
    const target = path.resolve(output);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
  for (const note of notes) io.err(`note: ${note}`);
  const ran = doc.cases.filter((c) => c.status !== "skip").length;
  io.err(`merged ${inputs.length} report(s): ${ran} case(s) ran, ${doc.summary.pass} pass, ${doc.summary.fail} fail, ${doc.summary.error} error, ${doc.summary.notTested} not-tested; verdict ${doc.verdict}${output === "-" ? "" : ` — ${output}`}`);
  if (doc.expectations) {
    io.err(`known failures (${doc.expectations.file}): ${outcomeLine(doc.expectations)}`);
    for (const e of doc.expectations.entries) if (e.outcome === "unexpectedly-passed" || e.outcome === "expired") io.err(`  ${e.outcome}: ${e.id} — ${e.detail}`);
    io.err(exitLine(doc));
  }
  return exitCodeWithExpectations(doc);
}
