// The console reporter: one line per case, Expected/Actual with the proving stanzas on failures,
// a summary and the verdict at the end; on a terminal, a live progress line below the case lines
// (cases done, running, elapsed time). Quiet mode prints the verdict line only. Colours are off
// when the stream is not a terminal or NO_COLOR is set. It writes only to the stream it is given.
import type { EventEmitter } from "node:events";
import { Chalk, supportsColor } from "chalk";
import type { ChalkInstance } from "chalk";
import type { CaseResult, CaseStatus, CheckResult, TranscriptEntry, Verdict } from "../checks/model.ts";
import type { AggregateStatus, AggregatedRequirement } from "../checks/verdict.ts";
import type { RunEndInfo, RunInfo, RunnerEvents } from "../runner/events.ts";
import { statsFor } from "./stats.ts";
import type { StatsCollector } from "./stats.ts";
import { exitLine, outcomeLine } from "./expect.ts";

/** The part of a writable stream the reporter uses (process.stdout, a file stream, a test fake). */
export interface OutputStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  /** Width of a terminal, for the progress line. */
  columns?: number;
}

export interface ConsoleReporterOptions {
  out?: OutputStream;
  /** Default: colours when `out` is a terminal and NO_COLOR is not set. */
  color?: boolean;
  /** Print evidence stanzas in full instead of truncated, and list filtered-out cases. */
  verbose?: boolean;
  /** Print only the verdict line (`non-compliant — reports/…/report.json`) when the run ends. */
  quiet?: boolean;
  /** A live progress line (rewritten in place); default: when `out` is a terminal and not quiet. */
  progress?: boolean;
  /** Milliseconds between redraws of the progress line while nothing happens (default 1000; 0: on events only). */
  progressIntervalMs?: number;
  /** The clock of the progress line (tests pass a fake). */
  now?: () => number;
  /** Shown at the end of the summary; can also be set later with setReportPath. */
  reportPath?: string;
  /** Further files the run writes (report.html, …), listed after reportPath; read when the run ends. */
  artifacts?: () => readonly string[];
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

/**
 * Terminal control characters in report text (a stanza, a reason) shown as \xNN, so a hostile
 * endpoint cannot move the cursor, retitle the window or hide lines; tabs and line breaks stay.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

function indent(text: string, prefix: string): string {
  return text.split(/\r?\n/).map((line) => `${prefix}${line}`).join("\n");
}

/** Colours by default only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function defaultColor(out: OutputStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(out.isTTY) && !env.NO_COLOR;
}

const CLEAR_LINE = "\r\x1b[2K";

export function createConsoleReporter(options: ConsoleReporterOptions = {}): ConsoleReporter {
  const out = options.out ?? process.stdout;
  const color = options.color ?? defaultColor(out);
  const c: ChalkInstance = new Chalk({ level: color ? (supportsColor ? Math.max(1, supportsColor.level) : 1) as 1 | 2 | 3 : 0 });
  const verbose = options.verbose ?? false;
  const quiet = options.quiet ?? false;
  const limit = options.truncateAt ?? DEFAULT_TRUNCATE_AT;
  const now = options.now ?? Date.now;
  let reportPath = options.reportPath;

  // ---- the live progress line: drawn below the case lines, cleared before each of them
  const progressOn = !quiet && (options.progress ?? Boolean(out.isTTY));
  const running = new Map<string, string>(); // case id → its current step
  let done = 0;
  let planned = 0;
  let startedAt = 0;
  let shown = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  function progressText(): string {
    const elapsed = ((now() - startedAt) / 1000).toFixed(1);
    const width = 20;
    const filled = planned ? Math.min(width, Math.round((done / planned) * width)) : 0;
    const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
    const [first] = running;
    const current = first ? ` · ${first[0]}${first[1] ? `: ${first[1]}` : ""}` : "";
    const line = terminalSafe(`${bar} ${done}/${planned} cases · ${running.size} running · ${elapsed} s${current}`.replace(/\s+/g, " "));
    // A terminal that does not say its width (0 or absent) is taken as 80 columns.
    const columns = Math.max(20, (out.columns || 80) - 1);
    return line.length > columns ? `${line.slice(0, columns - 1)}…` : line;
  }
  let drawnAt = 0;
  /** Redraw the line; steps come fast (a case may send a hundred stanzas), so at most every 100 ms unless forced. */
  function drawProgress(force = true): void {
    if (!progressOn || !startedAt) return;
    const t = now();
    if (!force && shown && t - drawnAt < 100) return;
    drawnAt = t;
    out.write(`${CLEAR_LINE}${c.dim(progressText())}`);
    shown = true;
  }
  function clearProgress(): void {
    if (!shown) return;
    out.write(CLEAR_LINE);
    shown = false;
  }
  function stopProgress(): void {
    if (timer) clearInterval(timer);
    timer = undefined;
    clearProgress();
  }

  const write = (line = "") => {
    clearProgress();
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

  const clip = (raw: string) => {
    const text = terminalSafe(raw);
    return verbose || text.length <= limit ? text : `${text.slice(0, limit)}… [${text.length - limit} more chars; --verbose shows all]`;
  };
  const t = terminalSafe;

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
    write(c.dim(`${pad}#${entry.seq} +${Math.round(entry.t)} ms ${t(who)}${entry.note ? ` (${t(entry.note)})` : ""}:`));
    write(indent(clip(entry.xml), `${pad}  `));
    if (entry.decrypted !== undefined) {
      write(c.dim(`${pad}  decrypted:`));
      write(indent(clip(entry.decrypted), `${pad}    `));
    }
  }

  function failure(f: CheckResult, transcript: ReadonlyMap<number, TranscriptEntry>): void {
    const head = `    ${f.requirement}  `;
    const pad = " ".repeat(head.length);
    write(`${c.bold(head.trimEnd())}  ${c.green("Expected:")} ${t(f.expected)}`);
    write(`${pad}${c.red("Actual:  ")} ${t(f.actual)}`);
    if (f.step) write(c.dim(`${pad}Step:     ${t(f.step)}`));
    for (const seq of f.evidence) evidenceStanza(transcript.get(seq), seq, pad);
  }

  function caseLine(result: CaseResult): void {
    // Filtered-out cases would drown the few that ran; the summary counts them.
    if (result.status === "skip" && !verbose) return;
    const mark = paint[result.status](STATUS_MARK[result.status]);
    const duration = result.status === "skip" ? "" : ` ${c.dim(`(${Math.round(result.durationMs)} ms)`)}`;
    const skipReason = result.status === "skip" && result.reason ? ` ${c.dim(`— ${t(result.reason)}`)}` : "";
    write(`${mark} ${t(result.id)}  ${t(result.title)}${duration}${skipReason}`);
    if (result.status === "fail" || result.failures.length > 0) {
      const transcript = new Map(result.transcript.map((e) => [e.seq, e]));
      for (const f of result.failures) failure(f, transcript);
    }
    if (result.status === "error" || result.status === "not-tested" || (result.status === "fail" && result.failures.length === 0)) {
      write(`    ${paint[result.status](result.status === "error" ? "error:" : result.status === "fail" ? "failed:" : "not tested:")} ${t(result.reason ?? "no reason given")}`);
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
    if (end.incomplete) write(paint.error(`Run incomplete: ${t(end.incompleteReason ?? "not every selected case ran")}`));
    const verdict = stats.verdict();
    write(`${c.bold("Verdict:")} ${paintVerdict[verdict](verdict)}`);
    expectationLines(stats);
    if (reportPath) write(`Report: ${reportPath}`);
    for (const file of options.artifacts?.() ?? []) if (file !== reportPath) write(`Report: ${file}`);
  }

  /** With --expect: what became of each known failure, and what the exit code means beside the verdict. */
  function expectationLines(stats: StatsCollector, brief = false): void {
    const record = stats.expectations();
    if (!record) return;
    write(`${c.bold(`Known failures (${t(record.file)}):`)} ${outcomeLine(record)}`);
    if (!brief) {
      for (const e of record.entries) {
        const what = `${t(e.id)}${e.until ? c.dim(` (until ${e.until})`) : ""}`;
        if (e.outcome === "expected-and-failed") write(`  ${paint.fail("✖")} ${what}  ${c.dim(`failed, as expected — ${t(e.reason)}`)}`);
        else if (e.outcome === "unexpectedly-passed") write(`  ${c.bold.red("!")} ${what}  ${c.bold.red("passed: remove it from the list")} ${c.dim(`(listed because: ${t(e.reason)})`)}`);
        else if (e.outcome === "expired") write(`  ${paint["not-tested"]("⌛")} ${what}  ${paint["not-tested"](t(e.detail))}`);
        else if (verbose) write(`  ${paint.skip("-")} ${what}  ${c.dim(t(e.detail))}`);
      }
    }
    const line = exitLine({ requirements: stats.requirementResults(), incomplete: stats.incomplete(), verdict: stats.verdict(), expectations: record });
    write(line.startsWith("exit 0") ? c.bold(line) : c.bold.red(line));
  }

  return {
    setReportPath(p) {
      reportPath = p;
    },
    attach(events) {
      const stats = options.stats ?? statsFor(events);
      stats.attach(events); // no-op when already subscribed; subscribed before our run:end listener
      if (quiet) {
        events.on("run:end", () => {
          write(`${stats.verdict()}${reportPath ? ` — ${reportPath}` : ""}`);
          expectationLines(stats, true);
        });
        return;
      }
      events.on("run:start", (info) => {
        header(info);
        running.clear();
        done = 0;
        planned = info.selection.selected;
        startedAt = now();
        const every = options.progressIntervalMs ?? 1000;
        if (progressOn && every > 0) {
          timer = setInterval(() => drawProgress(), every);
          timer.unref?.();
        }
        drawProgress();
      });
      events.on("case:start", (info) => {
        running.set(info.id, "");
        drawProgress();
      });
      events.on("step", (step) => {
        if (!running.has(step.caseId)) return;
        running.set(step.caseId, step.description);
        drawProgress(false);
      });
      events.on("case:end", (result) => {
        running.delete(result.id);
        if (result.status !== "skip") done++;
        caseLine(result);
        drawProgress();
      });
      events.on("run:end", (end) => {
        stopProgress();
        summary(stats, end);
      });
    },
  };
}
