// The console reporter: one line per case, Expected/Actual with the proving stanzas on failures,
// a summary and the verdict at the end. It writes only to the stream it is given.
import type { EventEmitter } from "node:events";
import { Chalk, supportsColor } from "chalk";
import type { ChalkInstance } from "chalk";
import type { CaseResult, CaseStatus, CheckResult, TranscriptEntry, Verdict } from "../checks/model.ts";
import type { AggregateStatus, AggregatedRequirement } from "../checks/verdict.ts";
import type { RunEndInfo, RunInfo, RunnerEvents } from "../runner/events.ts";
import { statsFor } from "./stats.ts";
import type { StatsCollector } from "./stats.ts";

/** The part of a writable stream the reporter uses (process.stdout, a file stream, a test fake). */
export interface OutputStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface ConsoleReporterOptions {
  out?: OutputStream;
  /** Default: colours when `out` is a terminal and NO_COLOR is not set. */
  color?: boolean;
  /** Print evidence stanzas in full instead of truncated. */
  verbose?: boolean;
  /** Shown at the end of the summary; can also be set later with setReportPath. */
  reportPath?: string;
  /** Characters of each evidence stanza shown when not verbose. */
  truncateAt?: number;
  /** The run's stats collector; default: the one shared by every reporter of the emitter. */
  stats?: StatsCollector;
}

export interface ConsoleReporter {
  attach(events: EventEmitter<RunnerEvents>): void;
  setReportPath(reportPath: string | undefined): void;
}

export const STATUS_MARK: Record<CaseStatus, string> = { pass: "✔", fail: "✖", error: "!", "not-tested": "○", skip: "-" };

export const DEFAULT_TRUNCATE_AT = 600;

function indent(text: string, prefix: string): string {
  return text.split(/\r?\n/).map((line) => `${prefix}${line}`).join("\n");
}

export function createConsoleReporter(options: ConsoleReporterOptions = {}): ConsoleReporter {
  const out = options.out ?? process.stdout;
  const color = options.color ?? (Boolean(out.isTTY) && !process.env.NO_COLOR);
  const c: ChalkInstance = new Chalk({ level: color ? (supportsColor ? Math.max(1, supportsColor.level) : 1) as 1 | 2 | 3 : 0 });
  const verbose = options.verbose ?? false;
  const limit = options.truncateAt ?? DEFAULT_TRUNCATE_AT;
  let reportPath = options.reportPath;

  const write = (line = "") => {
    out.write(`${line}\n`);
  };

  const paint: Record<CaseStatus | "uncovered", (s: string) => string> = {
    pass: c.green,
    fail: c.red,
    error: c.magenta,
    "not-tested": c.yellow,
    skip: c.gray,
    uncovered: c.gray,
  };
  const paintVerdict: Record<Verdict, (s: string) => string> = {
    compliant: c.bold.green,
    "compliant-with-warnings": c.bold.yellow,
    incomplete: c.bold.magenta,
    "non-compliant": c.bold.red,
  };

  const clip = (text: string) =>
    verbose || text.length <= limit ? text : `${text.slice(0, limit)}… [${text.length - limit} more chars; --verbose shows all]`;

  function header(info: RunInfo): void {
    const { selected, total } = info.selection;
    const parts = [
      `${info.suite.name} ${info.suite.version}`,
      `${info.profile.id}/${info.profile.version}`,
      `endpoint ${info.endpoint}${info.endpointDescription ? ` (${info.endpointDescription})` : ""}`,
      `policy ${info.policy}`,
      `${selected} of ${total} case${total === 1 ? "" : "s"} selected`,
    ];
    write(c.bold(parts.join(" · ")));
  }

  function evidenceStanza(entry: TranscriptEntry | undefined, seq: number, pad: string): void {
    if (!entry) {
      write(c.dim(`${pad}#${seq} (no such entry in the transcript)`));
      return;
    }
    const who = `${entry.actor} ${entry.direction === "in" ? "received" : "sent"}`;
    write(c.dim(`${pad}#${entry.seq} +${Math.round(entry.t)} ms ${who}${entry.note ? ` (${entry.note})` : ""}:`));
    write(indent(clip(entry.xml), `${pad}  `));
    if (entry.decrypted !== undefined) {
      write(c.dim(`${pad}  decrypted:`));
      write(indent(clip(entry.decrypted), `${pad}    `));
    }
  }

  function failure(f: CheckResult, transcript: ReadonlyMap<number, TranscriptEntry>): void {
    const head = `    ${f.requirement}  `;
    const pad = " ".repeat(head.length);
    write(`${c.bold(head.trimEnd())}  ${c.green("Expected:")} ${f.expected}`);
    write(`${pad}${c.red("Actual:  ")} ${f.actual}`);
    if (f.step) write(c.dim(`${pad}Step:     ${f.step}`));
    for (const seq of f.evidence) evidenceStanza(transcript.get(seq), seq, pad);
  }

  function caseLine(result: CaseResult): void {
    // Filtered-out cases would drown the few that ran; the summary counts them.
    if (result.status === "skip" && !verbose) return;
    const mark = paint[result.status](STATUS_MARK[result.status]);
    const duration = result.status === "skip" ? "" : ` ${c.dim(`(${Math.round(result.durationMs)} ms)`)}`;
    const skipReason = result.status === "skip" && result.reason ? ` ${c.dim(`— ${result.reason}`)}` : "";
    write(`${mark} ${result.id}  ${result.title}${duration}${skipReason}`);
    if (result.status === "fail" || result.failures.length > 0) {
      const transcript = new Map(result.transcript.map((e) => [e.seq, e]));
      for (const f of result.failures) failure(f, transcript);
    }
    if (result.status === "error" || result.status === "not-tested" || (result.status === "fail" && result.failures.length === 0)) {
      write(`    ${paint[result.status](result.status === "error" ? "error:" : result.status === "fail" ? "failed:" : "not tested:")} ${result.reason ?? "no reason given"}`);
    }
  }

  function requirementRow(r: AggregatedRequirement): void {
    write(`  ${paint[r.status](r.id)} ${r.level.padEnd(6)} ${r.text}${r.status === "fail" ? "" : c.dim(` (${r.status})`)}`);
  }

  function summary(stats: StatsCollector, end: RunEndInfo): void {
    const s = stats.summary();
    const info = stats.runInfo;
    const elapsed = info ? Date.parse(end.finishedAt) - Date.parse(info.startedAt) : Number.NaN;
    write();
    write(
      `${s.total} case${s.total === 1 ? "" : "s"}: ${paint.pass(`${s.pass} pass`)}, ${paint.fail(`${s.fail} fail`)}, ${paint.error(`${s.error} error`)}, ` +
        `${paint["not-tested"](`${s.notTested} not-tested`)}, ${paint.skip(`${s.skip} skip`)}` +
        (Number.isFinite(elapsed) && elapsed >= 0 ? c.dim(` (${(elapsed / 1000).toFixed(1)} s)`) : ""),
    );
    const rows = stats.requirementResults();
    const count = (status: AggregateStatus) => rows.filter((r) => r.status === status).length;
    write(
      `${rows.length} requirement${rows.length === 1 ? "" : "s"}: ${paint.pass(`${count("pass")} pass`)}, ${paint.fail(`${count("fail")} fail`)}, ` +
        `${paint.error(`${count("error")} error`)}, ${paint["not-tested"](`${count("not-tested")} not-tested`)}, ${paint.skip(`${count("skip")} skip`)}, ` +
        `${paint.uncovered(`${count("uncovered")} uncovered`)}`,
    );
    const failed = rows.filter((r) => r.status === "fail");
    if (failed.length) {
      write(c.bold("Failed requirements:"));
      for (const r of failed) requirementRow(r);
    }
    const unsettled = rows.filter((r) => r.status === "error" || r.status === "not-tested");
    if (unsettled.length) {
      write(c.bold("Requirements not established (error or not tested):"));
      for (const r of unsettled) requirementRow(r);
    }
    const uncovered = rows.filter((r) => r.status === "uncovered");
    if (uncovered.length) write(`${c.bold("Uncovered (no case):")} ${uncovered.map((r) => `${r.id} (${r.level})`).join(", ")}`);
    if (end.incomplete) write(paint.error(`Run incomplete: ${end.incompleteReason ?? "not every selected case ran"}`));
    const verdict = stats.verdict();
    write(`${c.bold("Verdict:")} ${paintVerdict[verdict](verdict)}`);
    if (reportPath) write(`Report: ${reportPath}`);
  }

  return {
    setReportPath(p) {
      reportPath = p;
    },
    attach(events) {
      const stats = options.stats ?? statsFor(events);
      stats.attach(events); // no-op when already subscribed; subscribed before our run:end listener
      events.on("run:start", (info) => header(info));
      events.on("case:end", (result) => caseLine(result));
      events.on("run:end", (end) => summary(stats, end));
    },
  };
}
