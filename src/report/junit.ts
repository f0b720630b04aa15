// The JUnit XML reporter: report.junit.xml for CI test views (GitHub Actions test-report actions,
// GitLab's `artifacts:reports:junit`, Jenkins' junit step). One <testcase> per case, classname =
// area; a failure's message names the requirement with Expected and Actual; <system-out> holds a
// transcript excerpt. A case that could not be tested is an <error type="not-tested">, not a
// <skipped>: an incomplete run must not look green in a CI test view; only cases left out by the
// filters (`skip`) are <skipped>. Built as XML with @xmpp/xml (escaping included), never by concatenation.
import { xml } from "../protocol/xml.ts";
import type { Element } from "../protocol/xml.ts";
import { caseReason, failureLine, oneLine, runDurationMs, showControls, transcriptExcerpt } from "./document.ts";
import type { ReportCase, ReportDocument } from "./document.ts";

export const JUNIT_FILE_NAME = "report.junit.xml";

export interface JunitOptions {
  /** Which cases get a <system-out> transcript excerpt: those that did not pass (default), all, or none. */
  transcript?: "failures" | "all" | "none";
  /** Characters of each <system-out> at most (default 8000). */
  maxOutput?: number;
}

/** Text XML 1.0 can carry: characters it cannot (a transcript may hold any) shown as [U+XXXX]. */
export const xmlSafe = showControls;

/** Make every attribute value and text node of a tree XML-safe (in place). */
function sanitize(el: Element): Element {
  for (const [k, v] of Object.entries(el.attrs)) if (typeof v === "string") el.attrs[k] = xmlSafe(v);
  el.children = el.children.map((c) => (typeof c === "string" ? xmlSafe(c) : sanitize(c as Element)));
  return el;
}

const seconds = (ms: number) => (Math.max(0, ms) / 1000).toFixed(3);

/** JUnit's timestamp: ISO 8601 without fraction and zone (the Ant XSD), in UTC. */
function timestamp(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace(/\.\d+Z$/, "");
}

/** Element children with line breaks between them, so the file reads and diffs line by line. */
function lines(depth: number, children: (Element | undefined)[]): (Element | string)[] {
  const pad = `\n${"  ".repeat(depth)}`;
  const present = children.filter((c): c is Element => c !== undefined);
  return present.length ? [...present.flatMap((c) => [pad, c]), `\n${"  ".repeat(depth - 1)}`] : [];
}

function failureBody(c: ReportCase, doc: ReportDocument): string {
  const text = (id: string) => doc.requirements.find((r) => r.id === id);
  const blocks = c.failures.map((f) => {
    const r = text(f.requirement);
    return [
      `${f.requirement}${r ? ` (${r.level}) ${r.text}` : ""}`,
      f.step ? `Step:     ${f.step}` : undefined,
      `Expected: ${f.expected}`,
      `Actual:   ${f.actual}`,
      f.evidence.length ? `Evidence: ${f.evidence.map((s) => `#${s}`).join(", ")} (see system-out / report.json)` : undefined,
    ].filter((l) => l !== undefined).join("\n");
  });
  if (c.reason) blocks.push(`Reason: ${c.reason}`);
  return blocks.join("\n\n");
}

/**
 * A selected case the run never got to (first connection failed, run interrupted): its status is
 * `skip`, but for a CI test view it is a gap, not a filter's choice. The runner words these "not run: …".
 */
function notRun(c: ReportCase): boolean {
  return c.status === "skip" && (c.reason ?? "").startsWith("not run:");
}

function testcase(c: ReportCase, doc: ReportDocument, options: JunitOptions): Element {
  const children: (Element | undefined)[] = [];
  if (c.status === "fail") {
    const message = c.failures.length ? caseReason(c, 1000) : oneLine(c.reason ?? "failed", 1000);
    children.push(xml("failure", { message, type: c.failures[0]?.requirement ?? "fail" }, failureBody(c, doc) || message));
  } else if (c.status === "error") {
    children.push(xml("error", { message: oneLine(c.reason ?? "error", 1000), type: "error" }, failureBody(c, doc) || c.reason || "error"));
  } else if (c.status === "not-tested") {
    // Not <skipped>: CI test views count skipped tests as green, and a case not tested is a gap in the run.
    const reason = c.reason ?? "a precondition is missing";
    children.push(xml("error", { message: oneLine(`not tested: ${reason}`, 1000), type: "not-tested" }, failureBody(c, doc) || `not tested: ${reason}`));
  } else if (notRun(c)) {
    children.push(xml("error", { message: oneLine(c.reason!, 1000), type: "not-run" }, c.reason!));
  } else if (c.status === "skip") {
    children.push(xml("skipped", { message: oneLine(`skipped: ${c.reason ?? "not selected"}`, 1000) }));
  } else if (c.failures.length) {
    // A passed case never has failures; if one does, it must not look green.
    children.push(xml("failure", { message: failureLine(c.failures[0]!, 1000), type: c.failures[0]!.requirement }, failureBody(c, doc)));
  }
  const mode = options.transcript ?? "failures";
  const wantsOutput = mode === "all" || (mode === "failures" && c.status !== "pass" && c.status !== "skip");
  if (wantsOutput) {
    const head = [`${c.id}: ${c.title}`, `requirements: ${c.requirements.join(", ")} (${c.level})`, `file: ${c.file}`].join("\n");
    const excerpt = transcriptExcerpt(c, { maxChars: options.maxOutput ?? 8000 });
    children.push(xml("system-out", {}, excerpt ? `${head}\n\ntranscript excerpt:\n${excerpt}\n` : `${head}\n`));
  }
  return xml("testcase", { name: c.id, classname: c.area, time: seconds(c.durationMs), file: c.file }, ...lines(3, children));
}

/** report.junit.xml for a report document. */
export function renderJunit(doc: ReportDocument, options: JunitOptions = {}): string {
  const count = (status: ReportCase["status"]) => doc.cases.filter((c) => c.status === status).length;
  const tests = doc.cases.length;
  const failures = count("fail");
  const errors = count("error") + count("not-tested") + doc.cases.filter(notRun).length;
  const skipped = count("skip") - doc.cases.filter(notRun).length;
  // Wall time of the run (cases run in parallel, so their durations add up to more).
  const time = seconds(runDurationMs(doc) ?? doc.cases.reduce((sum, c) => sum + c.durationMs, 0));
  const property = (name: string, value: string | number | boolean | undefined) => (value === undefined ? undefined : xml("property", { name, value: String(value) }));
  const properties = xml("properties", {}, ...lines(3, [
    property("verdict", doc.verdict),
    property("suite", doc.suite.name),
    property("suite.version", doc.suite.version),
    property("suite.commit", doc.suite.commit),
    property("profile", `${doc.profile.id}/${doc.profile.version}`),
    property("endpoint", doc.endpoint),
    property("endpoint.description", doc.run.endpointDescription),
    property("policy", doc.run.policy),
    property("mutant", doc.run.mutant),
    property("seed", doc.run.seed),
    property("incomplete", doc.incomplete),
    property("incomplete.reason", doc.incompleteReason),
    property("case-set.sha256", doc.run.caseSetSha256),
    property("started", doc.startedAt),
    property("finished", doc.finishedAt),
    property("command", doc.run.command),
  ]));
  const name = `${doc.suite.name} ${doc.profile.id}/${doc.profile.version} ${doc.endpoint}`;
  const suite = xml(
    "testsuite",
    { name, tests: String(tests), failures: String(failures), errors: String(errors), skipped: String(skipped), time, timestamp: timestamp(doc.startedAt) },
    ...lines(2, [properties, ...doc.cases.map((c) => testcase(c, doc, options))]),
  );
  const root = xml("testsuites", { name, tests: String(tests), failures: String(failures), errors: String(errors), skipped: String(skipped), time }, ...lines(1, [suite]));
  return `<?xml version="1.0" encoding="UTF-8"?>\n${sanitize(root).toString()}\n`;
}
