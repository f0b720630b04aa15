// `chatconform report render REPORT.json --format html|junit|markdown [--output FILE]`: render a
// report.json again without re-running, through the same renderers the live reporters use.
// Exit codes as EXIT in program.ts: 0 rendered, 3 bad input (unreadable or invalid report, unknown
// format or option).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { prepareDocument } from "../report/document.ts";
import type { ReportDocument } from "../report/document.ts";
import { validateReport } from "../report/json.ts";
import { ReporterError, resolveRenderer } from "../report/reporters.ts";

const EXIT_OK = 0;
const EXIT_BAD_INPUT = 3;

export interface ReportRenderFlags {
  /** html, junit or markdown, with options as in --reporter (junit:transcript=all), or a module path. */
  format: string;
  /** A file, or - for stdout (default). */
  output?: string;
}

export interface ReportRenderIo {
  /** Raw text to stdout (no newline added); a promise when the caller must wait for it to be flushed. */
  write: (text: string) => void | Promise<void>;
  err: (line?: string) => void;
  cwd?: string;
}

export async function reportRenderCommand(file: string, flags: ReportRenderFlags, io: ReportRenderIo): Promise<number> {
  const cwd = io.cwd ?? process.cwd();
  let renderer;
  try {
    renderer = await resolveRenderer(flags.format, { cwd });
  } catch (e) {
    if (e instanceof ReporterError) {
      io.err(`chatconform: ${e.message}`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  const source = path.resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(source, "utf8");
  } catch (e) {
    io.err(`chatconform: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return EXIT_BAD_INPUT;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    io.err(`${file}: not JSON: ${(e as Error).message}`);
    return EXIT_BAD_INPUT;
  }
  const problems = validateReport(doc);
  if (problems.length) {
    for (const p of problems) io.err(`${file}: ${p}`);
    io.err(`\n${problems.length} problem(s): not a chatconform report.json`);
    return EXIT_BAD_INPUT;
  }
  // The report was redacted when it was written; it goes through the same preparation as a live run's.
  const rendered = renderer.render(prepareDocument(doc as ReportDocument), renderer.spec.options);
  const optionFile = typeof renderer.spec.options.file === "string" ? renderer.spec.options.file : undefined;
  const output = flags.output ?? optionFile ?? "-";
  if (output === "-") {
    await io.write(rendered);
  } else {
    const target = path.resolve(cwd, output);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, rendered);
    io.err(`wrote ${path.relative(cwd, target) || target}`);
  }
  return EXIT_OK;
}
