// The JSON reporter: writes report.json (format 1, schema in report.schema.json) when the run ends.
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { EventEmitter } from "node:events";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import type { RunnerEvents } from "../runner/events.ts";
import { statsFor } from "./stats.ts";
import type { ReportDocument, StatsCollector } from "./stats.ts";

export type { ReportCase, ReportDocument, ReportFailure } from "./stats.ts";

export const REPORT_FILE_NAME = "report.json";
export const REDACTED = "[redacted]";

/** The JSON Schema of report.json (format 1). */
export const reportSchema: Record<string, unknown> = JSON.parse(readFileSync(new URL("./report.schema.json", import.meta.url), "utf8"));

const ajv = new Ajv({ allErrors: true });
const validateDocument = ajv.compile(reportSchema);

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(report)";
  if (e.keyword === "additionalProperties") return `${where}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  return `${where}: ${e.message ?? e.keyword}`;
}

/** Every schema problem of a report document as `path: message`; empty when it is valid. */
export function validateReport(doc: unknown): string[] {
  return validateDocument(doc) ? [] : (validateDocument.errors ?? []).map(describe);
}

/**
 * Replace every occurrence of every secret in every string (keys included) of a JSON value.
 * Done on the values, not the serialized text, so a secret with a quote or backslash is caught
 * too and the result stays valid JSON. Empty secrets are ignored.
 */
export function redactSecrets<T>(value: T, secrets: readonly string[]): T {
  const list = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return value;
  // One pass, longest secret first, so a replacement is never itself rewritten.
  const pattern = new RegExp(list.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  const text = (s: string) => s.replace(pattern, REDACTED);
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [text(k), walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/** Serialize a report with secrets redacted (the last line of defence: the runner redacts transcripts already). */
export function serializeReport(doc: ReportDocument, secrets: readonly string[] = []): string {
  // The JSON round trip drops undefined properties, as the file will.
  return `${JSON.stringify(redactSecrets(JSON.parse(JSON.stringify(doc)) as unknown, secrets), null, 2)}\n`;
}

/** Write outDir/report.json (creating outDir) and return its path. */
export async function writeReport(doc: ReportDocument, outDir: string, secrets: readonly string[] = []): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, REPORT_FILE_NAME);
  await writeFile(file, serializeReport(doc, secrets));
  return file;
}

export interface JsonReporterOptions {
  outDir: string;
  /** Strings that must never appear in the file (account passwords, tokens). */
  secrets?: readonly string[];
  /** The run's stats collector; default: the one shared by every reporter of the emitter. */
  stats?: StatsCollector;
}

export interface JsonReporter {
  /** Subscribe to a runner's events; report.json is written on run:end. */
  attach(events: EventEmitter<RunnerEvents>): void;
  /** Resolves with the file's path once report.json is written; rejects when writing fails. */
  readonly done: Promise<string>;
  /** Where the report will be written. */
  readonly path: string;
}

export function createJsonReporter(options: JsonReporterOptions): JsonReporter {
  const secrets = [...(options.secrets ?? [])];
  const file = path.join(options.outDir, REPORT_FILE_NAME);
  let resolve!: (file: string) => void;
  let reject!: (reason: unknown) => void;
  const done = new Promise<string>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Whoever awaits `done` still sees a rejection; this only keeps an early failure from being "unhandled".
  done.catch(() => {});
  let written = false;

  return {
    done,
    path: file,
    attach(events) {
      const stats = options.stats ?? statsFor(events);
      stats.attach(events); // no-op when already subscribed; subscribed before our run:end listener
      events.on("run:end", () => {
        if (written) return;
        written = true;
        let doc: ReportDocument;
        try {
          doc = stats.report();
        } catch (e) {
          reject(e);
          return;
        }
        writeReport(doc, options.outDir, secrets).then(resolve, reject);
      });
    },
  };
}
