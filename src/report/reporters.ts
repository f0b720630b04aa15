// The reporter registry: `--reporter console,json,junit:file=out.xml,./my-reporter.mjs` parsed,
// checked (unknown name or option → ReporterError, a usage error), modules imported, and each
// reporter created with one context and subscribed to the runner's events. Every file reporter
// renders from the report document (the content of report.json, secrets redacted), the same code
// path `chatconform report render` takes. The interface is documented in docs/reports.md.
import type { EventEmitter } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { RunnerEvents } from "../runner/events.ts";
import { createConsoleReporter, defaultColor } from "./console.ts";
import type { OutputStream } from "./console.ts";
import { prepareDocument } from "./document.ts";
import type { ReportDocument } from "./document.ts";
import { HTML_FILE_NAME, renderHtml } from "./html.ts";
import { REPORT_FILE_NAME, createJsonReporter } from "./json.ts";
import { JUNIT_FILE_NAME, renderJunit } from "./junit.ts";
import { MARKDOWN_FILE_NAME, renderMarkdown } from "./markdown.ts";
import { statsFor } from "./stats.ts";
import type { StatsCollector } from "./stats.ts";

/** A reporter's options: `name:key=value:flag` gives { key: "value", flag: true }. */
export type ReporterOptions = Record<string, string | true>;

/** What every reporter is given, built-in or module. */
export interface ReporterContext {
  /** The run's directory (reports/<UTC stamp>): where file reporters write by default. */
  readonly outDir: string;
  /** The working directory that relative `file=` options resolve against. */
  readonly cwd: string;
  /** Strings that must appear in no artifact (account passwords); the document given to onReport is already clean. */
  readonly secrets: readonly string[];
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** The CLI's --verbose, --quiet and --no-color: defaults for reporters that print. */
  readonly verbose: boolean;
  readonly quiet: boolean;
  /** False with --no-color; undefined: decide from the stream (terminal, NO_COLOR). */
  readonly color: boolean | undefined;
  /** The files the run's reporters write (report.json first); complete once every reporter is created. */
  artifacts(): readonly string[];
  /** The stats collector every reporter of this runner shares (subscribed on first use). */
  stats(events: EventEmitter<RunnerEvents>): StatsCollector;
  /**
   * Call `render` with the report document (secrets redacted) when the run ends; the promise
   * settles when it has finished. What every built-in file reporter is made of.
   */
  onReport(events: EventEmitter<RunnerEvents>, render: (doc: ReportDocument) => unknown): Promise<void>;
  /** Write text to `target`: a path (directories created) or "-" for stdout. */
  write(target: string, text: string): Promise<void>;
  /** Where `file=` points: the option resolved against cwd, "-" for stdout, or outDir/defaultName. */
  target(file: string | true | undefined, defaultName: string): string;
}

/** One reporter, built-in or module. */
export interface Reporter {
  /** Subscribe to the runner's events; called once, before run:start. */
  attach(events: EventEmitter<RunnerEvents>): void;
  /** The files it will write (absolute paths), known before the run; listed in the console summary. */
  readonly files?: readonly string[];
  /** Called after the run ended: settles once its output is complete; rejects when it could not write. */
  done?(): Promise<unknown>;
}

/** A module reporter's default export (or its `createReporter` export); built-ins have the same shape. */
export type ReporterFactory = (options: ReporterOptions, context: ReporterContext) => Reporter | Promise<Reporter>;

/** A document renderer: what `report render --format` uses; a module may export one as `render`. */
export type DocumentRenderer = (doc: ReportDocument, options: ReporterOptions) => string;

export interface BuiltinReporter {
  name: string;
  description: string;
  /** Known options and what they mean; any other option is a usage error. */
  options: Record<string, string>;
  create: ReporterFactory;
  /** For the document formats: render a document (`report render`). */
  render?: DocumentRenderer;
  /** The file written into the run's directory by default. */
  fileName?: string;
}

/** A usage problem with --reporter or --format: exit 3. */
export class ReporterError extends Error {}

export interface ReporterSpec {
  /** What was written, for messages. */
  spec: string;
  /** A built-in name, or a module path as written. */
  name: string;
  options: ReporterOptions;
  module: boolean;
}

const KEY = /^[a-z][a-z0-9-]*(=|$)/i;
const BUILTIN_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Parse one reporter spec: `NAME[:OPTION[=VALUE]]…`. A segment that does not start like an option
 * (`key=` or a bare word) belongs to what precedes it, so `file=C:\out.xml`, `url=https://x` and a
 * Windows module path keep their colons.
 */
export function parseReporterSpec(spec: string): ReporterSpec {
  const text = spec.trim();
  if (!text) throw new ReporterError("--reporter: empty reporter name");
  const segments = text.split(":");
  const parts: string[] = [segments[0]!];
  for (const seg of segments.slice(1)) {
    if (KEY.test(seg)) parts.push(seg);
    else parts[parts.length - 1] += `:${seg}`;
  }
  const [name, ...rawOptions] = parts as [string, ...string[]];
  const options: ReporterOptions = {};
  for (const raw of rawOptions) {
    const eq = raw.indexOf("=");
    const key = (eq === -1 ? raw : raw.slice(0, eq)).toLowerCase();
    if (key in options) throw new ReporterError(`--reporter ${text}: option "${key}" given twice`);
    options[key] = eq === -1 ? true : raw.slice(eq + 1);
  }
  return { spec: text, name, options, module: !BUILTIN_NAME.test(name) };
}

/** Parse a list of specs (each may itself be comma-separated). */
export function parseReporterList(values: readonly string[]): ReporterSpec[] {
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean).map(parseReporterSpec);
}

// ---- option values

function flag(spec: string, options: ReporterOptions, key: string): boolean | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  if (v === true) return true;
  const s = v.toLowerCase();
  if (["true", "yes", "on", "1"].includes(s)) return true;
  if (["false", "no", "off", "0"].includes(s)) return false;
  throw new ReporterError(`--reporter ${spec}: ${key}=${v}: must be true or false`);
}

function choice<T extends string>(spec: string, options: ReporterOptions, key: string, allowed: readonly T[]): T | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  if (v === true || !allowed.includes(v as T)) throw new ReporterError(`--reporter ${spec}: ${key}${v === true ? "" : `=${v}`}: must be one of ${allowed.join(", ")}`);
  return v as T;
}

function count(spec: string, options: ReporterOptions, key: string): number | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  const n = v === true ? Number.NaN : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ReporterError(`--reporter ${spec}: ${key}${v === true ? "" : `=${v}`}: must be a whole number`);
  return n;
}

const specOf = (name: string, options: ReporterOptions) =>
  [name, ...Object.entries(options).map(([k, v]) => (v === true ? k : `${k}=${v}`))].join(":");

// ---- built-ins

/** A reporter that renders the report document into one file (or stdout) when the run ends. */
function documentReporter(render: (doc: ReportDocument) => string, file: string | true | undefined, defaultName: string, context: ReporterContext): Reporter {
  const target = context.target(file, defaultName);
  let finished: Promise<unknown> | undefined;
  return {
    files: target === "-" ? [] : [target],
    attach(events) {
      finished = context.onReport(events, (doc) => context.write(target, render(doc)));
    },
    done: () => finished ?? Promise.resolve(),
  };
}

function fileOption(spec: string, options: ReporterOptions): string | undefined {
  const file = options.file;
  if (file === true || file === "") throw new ReporterError(`--reporter ${spec}: file needs a value: file=PATH, or file=- for stdout`);
  return file;
}

function junitOptions(spec: string, options: ReporterOptions) {
  return { transcript: choice(spec, options, "transcript", ["failures", "all", "none"] as const), maxOutput: count(spec, options, "max-output") };
}
function htmlOptions(spec: string, options: ReporterOptions) {
  return { chartBars: count(spec, options, "chart-bars"), open: choice(spec, options, "open", ["failures", "none"] as const) };
}
function markdownOptions(spec: string, options: ReporterOptions) {
  return { max: count(spec, options, "max") };
}

export const BUILTIN_REPORTERS: readonly BuiltinReporter[] = [
  {
    name: "console",
    description: "progress, one line per case, Expected/Actual on failures, summary and verdict (stdout)",
    options: {
      quiet: "print only the verdict line (as --quiet)",
      verbose: "full stanzas, filtered-out cases listed (as --verbose)",
      color: "auto (default: on a terminal without NO_COLOR), always or never",
      progress: "auto (default: on a terminal), always or never: the live progress line",
    },
    create(options, context) {
      const spec = specOf("console", options);
      const color = choice(spec, options, "color", ["auto", "always", "never"] as const);
      const progress = choice(spec, options, "progress", ["auto", "always", "never"] as const);
      const reporter = createConsoleReporter({
        out: context.stdout,
        quiet: flag(spec, options, "quiet") ?? context.quiet,
        verbose: flag(spec, options, "verbose") ?? context.verbose,
        color: color === "always" ? true : color === "never" ? false : color === "auto" ? defaultColor(context.stdout) : context.color,
        progress: progress === "always" ? true : progress === "never" ? false : undefined,
        reportPath: path.join(context.outDir, REPORT_FILE_NAME),
        artifacts: () => context.artifacts(),
      });
      return { attach: (events) => reporter.attach(events) };
    },
  },
  {
    name: "json",
    description: `${REPORT_FILE_NAME} in the run's directory: the run's record, always written`,
    options: {},
    fileName: REPORT_FILE_NAME,
    create(_options, context) {
      const json = createJsonReporter({ outDir: context.outDir, secrets: context.secrets });
      return { files: [json.path], attach: (events) => json.attach(events), done: () => json.done };
    },
  },
  {
    name: "junit",
    description: `JUnit XML for CI test views (${JUNIT_FILE_NAME})`,
    options: {
      file: `where to write (default: the run's directory/${JUNIT_FILE_NAME}; - for stdout)`,
      transcript: "which cases get a <system-out> transcript excerpt: failures (default), all, none",
      "max-output": "characters of each <system-out> at most (default 8000)",
    },
    fileName: JUNIT_FILE_NAME,
    render: (doc, options) => renderJunit(doc, junitOptions(specOf("junit", options), options)),
    create(options, context) {
      const spec = specOf("junit", options);
      const opts = junitOptions(spec, options);
      return documentReporter((doc) => renderJunit(doc, opts), fileOption(spec, options), JUNIT_FILE_NAME, context);
    },
  },
  {
    name: "html",
    description: `one self-contained page that opens offline (${HTML_FILE_NAME})`,
    options: {
      file: `where to write (default: the run's directory/${HTML_FILE_NAME}; - for stdout)`,
      "chart-bars": "bars in the timing chart at most (default 20)",
      open: "case panels open at first: failures (default) or none",
    },
    fileName: HTML_FILE_NAME,
    render: (doc, options) => renderHtml(doc, htmlOptions(specOf("html", options), options)),
    create(options, context) {
      const spec = specOf("html", options);
      const opts = htmlOptions(spec, options);
      return documentReporter((doc) => renderHtml(doc, opts), fileOption(spec, options), HTML_FILE_NAME, context);
    },
  },
  {
    name: "markdown",
    description: `summary for PR comments and CI step summaries (${MARKDOWN_FILE_NAME})`,
    options: {
      file: `where to write (default: the run's directory/${MARKDOWN_FILE_NAME}; - for stdout)`,
      max: "rows per table at most (default 50)",
    },
    fileName: MARKDOWN_FILE_NAME,
    render: (doc, options) => renderMarkdown(doc, markdownOptions(specOf("markdown", options), options)),
    create(options, context) {
      const spec = specOf("markdown", options);
      const opts = markdownOptions(spec, options);
      // The summary points at the richest artifact of the run: the HTML page when there is one.
      const pointer = () => {
        const files = context.artifacts();
        const best = files.find((f) => f.endsWith(".html")) ?? files[0];
        if (!best) return undefined;
        const relative = path.relative(context.cwd, best);
        return relative && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : best;
      };
      return documentReporter((doc) => renderMarkdown(doc, { ...opts, reportPath: pointer() }), fileOption(spec, options), MARKDOWN_FILE_NAME, context);
    },
  },
];

export const DEFAULT_REPORTERS = ["console", "json"] as const;

const builtin = (name: string) => BUILTIN_REPORTERS.find((r) => r.name === name);
const knownNames = () => BUILTIN_REPORTERS.map((r) => r.name).join(", ");

/** A reporter ready to be created: a built-in with checked options, or an imported module. */
export interface ResolvedReporter {
  spec: ReporterSpec;
  create: ReporterFactory;
  render?: DocumentRenderer;
  /** For built-ins. */
  builtin?: BuiltinReporter;
}

async function importModule(spec: ReporterSpec, cwd: string): Promise<{ create?: ReporterFactory; render?: DocumentRenderer }> {
  const file = path.resolve(cwd, spec.name);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new ReporterError(`--reporter ${spec.spec}: cannot load ${file}: ${(e as Error).message?.split("\n")[0] ?? String(e)}`);
  }
  const create = [mod.default, mod.createReporter].find((f): f is ReporterFactory => typeof f === "function");
  const render = typeof mod.render === "function" ? (mod.render as DocumentRenderer) : undefined;
  return { create, render };
}

function checkOptions(spec: ReporterSpec, def: BuiltinReporter): void {
  for (const key of Object.keys(spec.options)) {
    if (!(key in def.options)) {
      const known = Object.keys(def.options);
      throw new ReporterError(`--reporter ${spec.spec}: unknown option "${key}" for ${def.name}${known.length ? ` (known: ${known.join(", ")})` : " (it takes none)"}`);
    }
  }
}

/**
 * Check every spec and import the modules, before the run starts: an unknown reporter or option,
 * or a module that cannot be loaded or exports no factory, is a ReporterError. report.json is
 * always written: `json` is added when the list lacks it.
 */
export async function resolveReporters(specs: readonly ReporterSpec[], options: { cwd?: string } = {}): Promise<ResolvedReporter[]> {
  const cwd = options.cwd ?? process.cwd();
  const resolved: ResolvedReporter[] = [];
  const seen = new Set<string>();
  for (const spec of specs) {
    if (!spec.module) {
      const def = builtin(spec.name);
      if (!def) throw new ReporterError(`unknown reporter "${spec.name}": use ${knownNames()}, or a path to a module (./my-reporter.mjs)`);
      if ((def.name === "json" || def.name === "console") && seen.has(def.name)) throw new ReporterError(`--reporter: ${def.name} is listed twice`);
      seen.add(def.name);
      checkOptions(spec, def);
      // Option values too: a bad value is a usage error before the run, not after it.
      validateValues(spec, def);
      resolved.push({ spec, create: def.create, render: def.render, builtin: def });
      continue;
    }
    const { create, render } = await importModule(spec, cwd);
    if (!create) throw new ReporterError(`--reporter ${spec.spec}: the module exports no reporter factory (a default export or createReporter: (options, context) => reporter)`);
    resolved.push({ spec, create, render });
  }
  if (!seen.has("json")) {
    const json = builtin("json")!;
    resolved.push({ spec: { spec: "json", name: "json", options: {}, module: false }, create: json.create, builtin: json });
  }
  return resolved;
}

/** Option values of a built-in checked without creating it. */
function validateValues(spec: ReporterSpec, def: BuiltinReporter): void {
  const s = spec.spec;
  const o = spec.options;
  switch (def.name) {
    case "console":
      flag(s, o, "quiet");
      flag(s, o, "verbose");
      choice(s, o, "color", ["auto", "always", "never"]);
      choice(s, o, "progress", ["auto", "always", "never"]);
      break;
    case "junit":
      fileOption(s, o);
      junitOptions(s, o);
      break;
    case "html":
      fileOption(s, o);
      htmlOptions(s, o);
      break;
    case "markdown":
      fileOption(s, o);
      markdownOptions(s, o);
      break;
  }
}

/** Resolve a `report render --format` value: a document format or a module exporting `render`. */
export async function resolveRenderer(format: string, options: { cwd?: string } = {}): Promise<{ spec: ReporterSpec; render: DocumentRenderer; fileName?: string }> {
  const spec = parseReporterSpec(format);
  if (!spec.module) {
    const def = builtin(spec.name);
    if (!def?.render) {
      const formats = BUILTIN_REPORTERS.filter((r) => r.render).map((r) => r.name).join(", ");
      throw new ReporterError(`unknown format "${spec.name}": use ${formats}, or a path to a module that exports render(doc, options)`);
    }
    checkOptions(spec, def);
    validateValues(spec, def);
    return { spec, render: def.render, fileName: def.fileName };
  }
  const { render } = await importModule(spec, options.cwd ?? process.cwd());
  if (!render) throw new ReporterError(`--format ${spec.spec}: the module exports no render(doc, options) function`);
  return { spec, render };
}

export interface ReporterSetOptions {
  outDir: string;
  secrets?: readonly string[];
  stdout?: OutputStream;
  stderr?: OutputStream;
  verbose?: boolean;
  quiet?: boolean;
  color?: boolean;
  cwd?: string;
}

/** The run's reporters, created and ready to subscribe. */
export interface ReporterSet {
  attach(events: EventEmitter<RunnerEvents>): void;
  /** After the run: settles once every reporter finished; rejects with the first failure. Resolves with the files written. */
  done(): Promise<string[]>;
  /** Every file the reporters write, report.json first. */
  readonly files: readonly string[];
  /** outDir/report.json. */
  readonly reportPath: string;
  /** Whether a console reporter prints (the CLI prints the verdict line itself otherwise). */
  readonly hasConsole: boolean;
}

type WriteWithCallback = (chunk: string, callback: (error?: Error | null) => void) => unknown;

async function writeTarget(target: string, text: string, stdout: OutputStream): Promise<void> {
  if (target === "-") {
    // A stream whose write takes a callback (process.stdout) is awaited: the CLI exits soon after,
    // and a pipe would lose what is still queued.
    if (stdout.write.length >= 2) await new Promise<void>((resolve, reject) => (stdout.write as WriteWithCallback)(text, (e) => (e ? reject(e) : resolve())));
    else stdout.write(text);
    return;
  }
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, text);
}

/** Create every resolved reporter with one shared context. */
export async function createReporters(resolved: readonly ResolvedReporter[], options: ReporterSetOptions): Promise<ReporterSet> {
  const cwd = options.cwd ?? process.cwd();
  const stdout = options.stdout ?? process.stdout;
  const secrets = [...(options.secrets ?? [])];
  const files: string[] = [];
  const context: ReporterContext = {
    outDir: options.outDir,
    cwd,
    secrets,
    stdout,
    stderr: options.stderr ?? process.stderr,
    verbose: options.verbose ?? false,
    quiet: options.quiet ?? false,
    color: options.color,
    artifacts: () => files,
    stats: (events) => statsFor(events),
    onReport(events, render) {
      const stats = statsFor(events); // subscribed before the listener below
      const finished = new Promise<void>((resolve, reject) => {
        events.once("run:end", () => {
          try {
            const doc = prepareDocument(stats.report(), secrets);
            Promise.resolve(render(doc)).then(() => resolve(), reject);
          } catch (e) {
            reject(e);
          }
        });
      });
      // Whoever awaits it still sees a failure; this only keeps an early one from being "unhandled".
      finished.catch(() => {});
      return finished;
    },
    write: (target, text) => writeTarget(target, text, stdout),
    target(file, defaultName) {
      if (file === "-") return "-";
      if (typeof file === "string" && file !== "") return path.resolve(cwd, file);
      return path.join(options.outDir, defaultName);
    },
  };
  const reporters: Reporter[] = [];
  for (const r of resolved) {
    let reporter: Reporter;
    try {
      reporter = await r.create(r.spec.options, context);
    } catch (e) {
      if (e instanceof ReporterError) throw e;
      throw new ReporterError(`--reporter ${r.spec.spec}: ${(e as Error).message ?? String(e)}`);
    }
    if (!reporter || typeof reporter.attach !== "function") throw new ReporterError(`--reporter ${r.spec.spec}: the factory returned no reporter (an object with attach(events))`);
    reporters.push(reporter);
    for (const f of reporter.files ?? []) if (!files.includes(f)) files.push(f);
  }
  const reportPath = path.join(options.outDir, REPORT_FILE_NAME);
  files.sort((a, b) => (a === reportPath ? -1 : b === reportPath ? 1 : 0));
  return {
    files,
    reportPath,
    hasConsole: resolved.some((r) => r.builtin?.name === "console"),
    attach(events) {
      statsFor(events); // the shared collector subscribes first, so it has seen run:end before any reporter renders
      for (const r of reporters) r.attach(events);
    },
    async done() {
      await Promise.all(reporters.map((r) => r.done?.()));
      return [...files];
    },
  };
}
