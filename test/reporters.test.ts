// The reporters (console, JSON, JUnit, HTML, Markdown, module), the --reporter registry and
// `report render`, driven by a fake runner (test/fake-runner.ts): no endpoint, no network.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Element } from "../src/protocol/xml.ts";
import { parseXml } from "../src/protocol/xml.ts";
import { reportRenderCommand } from "../src/cli/report-render.ts";
import { createConsoleReporter, defaultColor, terminalSafe } from "../src/report/console.ts";
import { prepareDocument, transcriptExcerpt } from "../src/report/document.ts";
import { CONTENT_SECURITY_POLICY, escapeHtml, renderHtml } from "../src/report/html.ts";
import { validateReport } from "../src/report/json.ts";
import type { ReportDocument } from "../src/report/json.ts";
import { renderJunit, xmlSafe } from "../src/report/junit.ts";
import { mdText, renderMarkdown } from "../src/report/markdown.ts";
import { ReporterError, createReporters, parseReporterList, parseReporterSpec, resolveReporters } from "../src/report/reporters.ts";
import { statsFor } from "../src/report/stats.ts";
import { CONTROL, END, FakeStream, IMG, SCRIPT, SECRET, cases, fakeRun, newEvents } from "./fake-runner.ts";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "chatconform-reporters-"));

/** The report document of the fake run, as the reporters get it (secrets redacted). */
function fakeDocument(): ReportDocument {
  const events = newEvents();
  const stats = statsFor(events);
  fakeRun(events);
  return prepareDocument(stats.report(), [SECRET]);
}

/** Run every reporter on the fake runner into a fresh directory; returns what was written. */
async function liveRun(list: string[], extra: { cwd?: string; quiet?: boolean; verbose?: boolean } = {}) {
  const outDir = path.join(tmp(), "run");
  const stdout = new FakeStream();
  const stderr = new FakeStream();
  const resolved = await resolveReporters(parseReporterList(list), { cwd: extra.cwd });
  const set = await createReporters(resolved, { outDir, secrets: [SECRET], stdout, stderr, cwd: extra.cwd, quiet: extra.quiet, verbose: extra.verbose });
  const events = newEvents();
  set.attach(events);
  fakeRun(events);
  const files = await set.done();
  return { outDir, stdout, stderr, set, files };
}

const childElements = (el: Element, name: string) => el.getChildren(name) as Element[];

describe("--reporter parsing", () => {
  it("reads names, KEY=VALUE options and bare flags", () => {
    assert.deepEqual(parseReporterSpec("junit:file=out/junit.xml:transcript=all"), { spec: "junit:file=out/junit.xml:transcript=all", name: "junit", options: { file: "out/junit.xml", transcript: "all" }, module: false });
    assert.deepEqual(parseReporterSpec("console:quiet").options, { quiet: true });
    assert.deepEqual(parseReporterSpec("markdown:file=-").options, { file: "-" });
  });

  it("keeps colons that do not start an option: Windows paths, URLs, module paths", () => {
    assert.deepEqual(parseReporterSpec("junit:file=C:\\ci\\junit.xml").options, { file: "C:\\ci\\junit.xml" });
    assert.deepEqual(parseReporterSpec("./r.mjs:url=https://ci.example/x:8080").options, { url: "https://ci.example/x:8080" });
    const win = parseReporterSpec("C:\\reporters\\mine.mjs:level=2");
    assert.equal(win.name, "C:\\reporters\\mine.mjs");
    assert.equal(win.module, true);
    assert.deepEqual(win.options, { level: "2" });
    assert.equal(parseReporterSpec("./my-reporter.mjs").module, true);
  });

  it("splits comma lists and repeated flags", () => {
    assert.deepEqual(parseReporterList(["console,json", "junit:file=a.xml", " html "]).map((s) => s.name), ["console", "json", "junit", "html"]);
  });

  it("rejects an option given twice", () => {
    assert.throws(() => parseReporterSpec("junit:file=a:file=b"), /option "file" given twice/);
  });
});

describe("reporter registry", () => {
  const fails = async (list: string[], pattern: RegExp) => {
    await assert.rejects(resolveReporters(parseReporterList(list)), (e: unknown) => {
      assert.ok(e instanceof ReporterError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  };

  it("refuses unknown reporters, options and values as usage errors", async () => {
    await fails(["tap"], /unknown reporter "tap": use console, json, junit, html, markdown, or a path to a module/);
    await fails(["junit:colour=red"], /unknown option "colour" for junit \(known: file, transcript, max-output\)/);
    await fails(["json:file=x.json"], /unknown option "file" for json \(it takes none\)/);
    await fails(["junit:transcript=some"], /transcript=some: must be one of failures, all, none/);
    await fails(["html:chart-bars=-1"], /chart-bars=-1: must be a whole number/);
    await fails(["console:quiet=maybe"], /quiet=maybe: must be true or false/);
    await fails(["markdown:file"], /file needs a value/);
    await fails(["console,console:verbose"], /console is listed twice/);
  });

  it("always adds json: report.json is the run's record", async () => {
    assert.deepEqual((await resolveReporters(parseReporterList(["junit"]))).map((r) => r.spec.name), ["junit", "json"]);
    assert.deepEqual((await resolveReporters(parseReporterList(["json", "console"]))).map((r) => r.spec.name), ["json", "console"]);
  });

  it("loads a module reporter with the built-ins' interface, and refuses a module without a factory", async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, "count-reporter.mjs"), [
      "import { writeFile } from 'node:fs/promises';",
      "import path from 'node:path';",
      "export default function createReporter(options, context) {",
      "  const file = context.target(options.file, 'count.txt');",
      "  let done;",
      "  return {",
      "    files: [file],",
      "    attach(events) {",
      "      let started = 0;",
      "      events.on('case:start', () => started++);",
      "      done = context.onReport(events, (doc) => context.write(file, `${options.label}: ${doc.verdict}, ${started} started, ${doc.cases.length} cases; ${doc.cases.find((c) => c.id === 'encryption/replay').transcript[0].xml}`));",
      "    },",
      "    done: () => done,",
      "  };",
      "}",
      "export function render(doc, options) { return `${options.label ?? 'render'}: ${doc.verdict}`; }",
    ].join("\n"));
    writeFileSync(path.join(dir, "nothing.mjs"), "export const x = 1;\n");
    const { outDir, files } = await liveRun(["./count-reporter.mjs:label=custom"], { cwd: dir });
    const text = readFileSync(path.join(outDir, "count.txt"), "utf8");
    assert.match(text, /^custom: non-compliant, 4 started, 5 cases; /);
    assert.ok(!text.includes(SECRET) && text.includes("[redacted]"), "the module gets the redacted document");
    assert.deepEqual(files.map((f) => path.basename(f)), ["report.json", "count.txt"]);

    await assert.rejects(resolveReporters(parseReporterList(["./nothing.mjs"]), { cwd: dir }), /exports no reporter factory/);
    await assert.rejects(resolveReporters(parseReporterList(["./missing.mjs"]), { cwd: dir }), (e: unknown) => e instanceof ReporterError && /cannot load .*missing\.mjs/.test(e.message));
  });
});

describe("live reporters on a fake run", () => {
  it("write report.json, report.junit.xml, report.html and report.md into the run's directory, with no secret in any", async () => {
    const { outDir, stdout, files } = await liveRun(["console", "json", "junit", "html", "markdown"]);
    assert.deepEqual(readdirSync(outDir).sort(), ["report.html", "report.json", "report.junit.xml", "report.md"]);
    assert.deepEqual(files.map((f) => path.basename(f)), ["report.json", "report.junit.xml", "report.html", "report.md"]);
    for (const name of readdirSync(outDir)) {
      const text = readFileSync(path.join(outDir, name), "utf8");
      assert.ok(!text.includes("hunter2"), `the secret is in ${name}`);
      if (name !== "report.md") assert.ok(text.includes("[redacted]"), `${name} shows the redaction`);
    }
    // The console lists every artifact after the verdict.
    for (const f of files) assert.ok(stdout.text.includes(`Report: ${f}`), stdout.text);
  });

  it("render the same bytes live as `report render` does from report.json: one code path", async () => {
    const { outDir } = await liveRun(["json", "junit", "html", "markdown"]);
    const doc = prepareDocument(JSON.parse(readFileSync(path.join(outDir, "report.json"), "utf8")) as ReportDocument);
    assert.equal(readFileSync(path.join(outDir, "report.html"), "utf8"), renderHtml(doc));
    assert.equal(readFileSync(path.join(outDir, "report.junit.xml"), "utf8"), renderJunit(doc));
    // The live summary also points at the HTML page; otherwise the same.
    const live = readFileSync(path.join(outDir, "report.md"), "utf8");
    assert.equal(live.replace(/\n\nFull report: .*\n$/, "\n"), renderMarkdown(doc));
    assert.match(live, /Full report: `.*report\.html`\n$/);
  });

  it("honours file=PATH (relative to the working directory) and file=- (stdout)", async () => {
    const cwd = tmp();
    const { stdout, outDir } = await liveRun(["junit:file=ci/junit.xml", "markdown:file=-"], { cwd });
    assert.match(readFileSync(path.join(cwd, "ci", "junit.xml"), "utf8"), /^<\?xml version="1.0" encoding="UTF-8"\?>/);
    assert.match(stdout.text, /^## ❌ TPC\/1 conformance: \*\*non-compliant\*\*/);
    assert.deepEqual(readdirSync(outDir), ["report.json"]);
  });

  it("with file=-, done() waits until stdout has taken the text (a pipe loses what is queued at exit)", async () => {
    const callbacks: (() => void)[] = [];
    let written = "";
    const stdout = { write(chunk: string, callback?: () => void) { written += chunk; if (callback) callbacks.push(callback); return true; } };
    const set = await createReporters(await resolveReporters(parseReporterList(["markdown:file=-"])), { outDir: path.join(tmp(), "run"), stdout });
    const events = newEvents();
    set.attach(events);
    fakeRun(events);
    let settled = false;
    const done = set.done().then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.match(written, /^## ❌/);
    assert.equal(settled, false, "not before the stream called back");
    callbacks.forEach((cb) => cb());
    await done;
    assert.equal(settled, true);
  });

  it("reject done() when a file cannot be written", async () => {
    const blocker = path.join(tmp(), "a-file");
    writeFileSync(blocker, "");
    const resolved = await resolveReporters(parseReporterList(["html:file=" + path.join(blocker, "x.html")]));
    const set = await createReporters(resolved, { outDir: path.join(tmp(), "run"), stdout: new FakeStream() });
    const events = newEvents();
    set.attach(events);
    fakeRun(events);
    await assert.rejects(set.done(), /ENOTDIR|EEXIST/);
  });
});

describe("JUnit reporter", () => {
  const doc = fakeDocument();
  const text = renderJunit(doc);
  const root = parseXml(text.replace(/^<\?xml[^>]*\?>\s*/, ""));
  const suite = root.getChild("testsuite") as Element;
  const testcase = (id: string) => childElements(suite, "testcase").find((t) => t.attrs.name === id)!;

  it("is well-formed XML 1.0 with no character XML cannot carry", () => {
    assert.equal(root.name, "testsuites");
    assert.doesNotMatch(text, /[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]/u);
    assert.ok(text.includes("[U+001B]") && text.includes("[U+0000]") && text.includes("[U+D800]"), "control characters are shown, not dropped");
    assert.equal(xmlSafe("a\x01b\uFFFEc"), "a[U+0001]b[U+FFFE]c");
  });

  it("has one testcase per case with classname = area, and the totals", () => {
    assert.deepEqual(childElements(suite, "testcase").map((t) => [t.attrs.name, t.attrs.classname]), cases.map((c) => [c.id, c.area]).sort());
    assert.deepEqual({ ...root.attrs, name: undefined }, { name: undefined, tests: "5", failures: "1", errors: "2", skipped: "1", time: "2.500" });
    assert.equal(suite.attrs.timestamp, "2025-01-01T10:00:00");
    assert.equal(testcase("encryption/replay").attrs.time, "1.310");
    assert.equal(testcase("encryption/replay").attrs.file, "cases/encryption/replay.yaml");
  });

  it("carries the verdict, the suite version and the endpoint as properties", () => {
    const props = Object.fromEntries(childElements(suite.getChild("properties") as Element, "property").map((p) => [p.attrs.name, p.attrs.value]));
    assert.equal(props.verdict, "non-compliant");
    assert.equal(props["suite.version"], "0.1.0");
    assert.equal(props.endpoint, "xmpp://127.0.0.1:5222");
    assert.equal(props.profile, "TPC/1");
    assert.equal(props.policy, "eea");
  });

  it("names the requirement with expected and actual in the failure, and a transcript excerpt in system-out", () => {
    const failure = testcase("encryption/replay").getChild("failure") as Element;
    assert.equal(failure.attrs.type, "ENC-10");
    assert.match(failure.attrs.message, /^ENC-10: expected exactly one receipt for m1 \| no more; actual: 2 receipts; the second one said <script>/);
    assert.match(failure.getText(), /ENC-10 \(MUST\) ENC-10 requirement text\.\nStep: {5}steps\[1\] expect receipt m1\nExpected: exactly one receipt/);
    const out = testcase("encryption/replay").getChildText("system-out")!;
    assert.match(out, /^encryption\/replay: Case encryption\/replay title\n/);
    assert.match(out, /#2 \+120 ms alice ← \(second receipt\) <message id='r2'><body><script>window.__pwned=1<\/script>/);
    assert.match(out, /decrypted: \{"text":"hi \[redacted\]"\}/);
    // The transcript's markup is text in the XML, not elements.
    assert.equal(testcase("encryption/replay").getChild("system-out")!.children.length, 1);
  });

  it("maps error to <error>, skip to <skipped>, pass to an empty testcase", () => {
    assert.match((testcase("lifecycle/hooks").getChild("error") as Element).attrs.message, /^connection reset by peer bell\[U\+0007\]esc\[U\+001B\]/);
    assert.match((testcase("transport/starttls").getChild("skipped") as Element).attrs.message, /^skipped: filtered out/);
    assert.deepEqual(childElements(testcase("encryption/text-roundtrip"), "failure"), []);
    assert.equal(testcase("encryption/text-roundtrip").getChild("system-out"), undefined);
    assert.ok(renderJunit(doc, { transcript: "all" }).includes("CIPHERTEXT-ONE"));
    assert.ok(!renderJunit(doc, { transcript: "none" }).includes("<system-out>"));
  });

  it("maps not-tested to <error type=\"not-tested\"> with its reason, never to <skipped> (an incomplete run must not look green)", () => {
    const notTested = testcase("encryption/prekeys");
    assert.deepEqual(childElements(notTested, "skipped"), []);
    const error = notTested.getChild("error") as Element;
    assert.equal(error.attrs.type, "not-tested");
    assert.equal(error.attrs.message, "not tested: hook state missing");
    assert.match(error.getText(), /hook state missing/);
    // Only the filtered-out case is counted as skipped; the not-tested one is an error.
    assert.equal(suite.attrs.skipped, "1");
    assert.equal(suite.attrs.errors, "2");
  });

  it("maps a selected case the run never got to (skip, \"not run: …\") to <error type=\"not-run\">, not <skipped>", () => {
    const reason = "not run: the first connection to the endpoint failed (connection refused)";
    const dead = { ...doc, cases: doc.cases.map((c) => (c.id === "transport/starttls" ? { ...c, reason } : c)) };
    const suiteOf = parseXml(renderJunit(dead).replace(/^<\?xml[^>]*\?>\s*/, "")).getChild("testsuite") as Element;
    const starttls = childElements(suiteOf, "testcase").find((t) => t.attrs.name === "transport/starttls")!;
    assert.deepEqual(childElements(starttls, "skipped"), []);
    const error = starttls.getChild("error") as Element;
    assert.equal(error.attrs.type, "not-run");
    assert.equal(error.attrs.message, reason);
    assert.equal(suiteOf.attrs.skipped, "0");
    assert.equal(suiteOf.attrs.errors, "3");
  });

  it("keeps a transcript excerpt around the evidence", () => {
    const replay = doc.cases.find((c) => c.id === "encryption/replay")!;
    const excerpt = transcriptExcerpt(replay, { context: 0 });
    assert.deepEqual(excerpt.split("\n").map((l) => l.slice(0, 10)), ["…", "#2 +120 ms", "    decryp", "…"]);
    assert.match(transcriptExcerpt(replay, { maxChars: 40 }), /… \[\d+ more characters; the full transcript is in report\.json\]$/);
  });
});

describe("Markdown reporter", () => {
  const doc = fakeDocument();
  const text = renderMarkdown(doc);
  const lines = text.split("\n");

  it("leads with the verdict and the counts", () => {
    assert.equal(lines[0], "## ❌ TPC/1 conformance: **non-compliant**");
    assert.match(lines[2]!, /^A MUST requirement fails\. · Endpoint `xmpp:\/\/127\.0\.0\.1:5222` \(fake endpoint\) · policy `eea` · chatconform 0\.1\.0 · 2025-01-01T10:00:00\.000Z \(2\.5 s\)$/);
    assert.ok(lines.includes("| cases | 5 | 1 | 1 | 1 | 1 | 1 | |"), text);
    assert.ok(lines.includes("| requirements | 6 | 0 | 1 | 1 | 2 | 1 | 1 |"), text);
    assert.ok(lines.includes("Uncovered (no case in the catalogue; an uncovered MUST makes the run incomplete): ENC\\-20".replace("\\-", "-")), text);
  });

  it("lists failing requirements with a one-line, escaped reason", () => {
    const row = lines.find((l) => l.startsWith("| **ENC-10** |"))!;
    assert.equal(row, "| **ENC-10** | MUST | `encryption/replay` | expected exactly one receipt for m1 \\| no more; actual: 2 receipts; the second one said &lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt; @\u200boctocat |");
    assert.ok(lines.includes("### Not established (error or not tested) (3)"), text);
    assert.match(text, /\| \*\*LIF-02\*\* \| MUST \| error \| `lifecycle\/hooks` \| error: connection reset by peer bell/);
    assert.match(text, /\| \*\*ENC-06\*\* \| MUST \| not tested \| `encryption\/replay` \| the case failed first on ENC-10 \|/);
    assert.ok(!/<script/i.test(text), "no raw markup");
  });

  it("escapes Markdown and HTML, flattens lines and defuses mentions", () => {
    assert.equal(mdText("a|b\n*c* <b>&amp; @team x@y.z `x`"), "a\\|b \\*c\\* &lt;b&gt;&amp;amp; @\u200bteam x@y.z \\`x\\`");
    assert.match(renderMarkdown(doc, { max: 1 }), /…and 2 more \(see the full report\)\./);
  });
});

describe("HTML reporter (static checks; the browser test renders it)", () => {
  const doc = fakeDocument();
  const html = renderHtml(doc);

  it("is one self-contained page: no external resource, a CSP that forbids the network", () => {
    assert.match(html, /^<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;sha256-/);
    assert.match(CONTENT_SECURITY_POLICY, /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; script-src 'sha256-[A-Za-z0-9+/=]+'; img-src data:; base-uri 'none'; form-action 'none'$/);
    assert.doesNotMatch(html, /\s(src|href)="(?!#)/, "only in-page links");
    assert.equal((html.match(/<script>/g) ?? []).length, 1, "one script: the page's own");
  });

  it("escapes every value from the report", () => {
    assert.ok(!html.includes(SCRIPT) && !html.includes(IMG));
    assert.ok(html.includes(escapeHtml(SCRIPT)) && html.includes(escapeHtml(IMG)));
    assert.ok(html.includes("CIPHERTEXT-TWO") && html.includes("[redacted]"));
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&</a>`), "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  });
});

describe("console reporter modes", () => {
  function consoleRun(options: Parameters<typeof createConsoleReporter>[0]): string {
    const out = (options?.out as FakeStream | undefined) ?? new FakeStream();
    const events = newEvents();
    createConsoleReporter({ color: false, reportPath: "reports/x/report.json", ...options, out }).attach(events);
    fakeRun(events);
    return out.text;
  }

  it("quiet prints the verdict line only", () => {
    assert.equal(consoleRun({ quiet: true }), "non-compliant — reports/x/report.json\n");
  });

  it("draws a live progress line on a terminal, cleared before each case line, and none elsewhere", () => {
    let clock = 1000;
    const progressRun = (columns: number) => {
      const tty = new FakeStream(true, columns);
      const events = newEvents();
      createConsoleReporter({ out: tty, color: false, now: () => (clock += 250), progressIntervalMs: 0 }).attach(events);
      fakeRun(events);
      return tty;
    };
    const tty = progressRun(120);
    const frames = tty.text.split("\r\x1b[2K");
    assert.ok(frames.some((f) => /^█{5}░{15} 1\/4 cases · 0 running · \d+\.\d s$/.test(f)), frames.join("\n---\n"));
    assert.ok(frames.some((f) => /^░{20} 0\/4 cases · 1 running · \d+\.\d s · encryption\/text-roundtrip: connect alice$/.test(f)), frames.join("\n---\n"));
    assert.ok(frames.some((f) => f.startsWith("████████████████████ 4/4 cases")), frames.join("\n---\n"));
    // On a narrow terminal the line is cut to fit, so it never wraps (a wrapped line cannot be cleared).
    const narrow = progressRun(40).text.split("\r\x1b[2K").filter((f) => f.includes("cases ·"));
    assert.ok(narrow.length > 0 && narrow.every((f) => f.length <= 39 && f.endsWith("…")), narrow.join("\n"));
    assert.ok(tty.text.endsWith("Verdict: non-compliant\n"), "cleared before the summary");
    assert.ok(!consoleRun({}).includes("\r"), "no progress line when not a terminal");
    assert.ok(!consoleRun({ out: new FakeStream(true), progress: false }).includes("\r"));
  });

  it("colours only on a terminal without NO_COLOR", () => {
    assert.equal(defaultColor(new FakeStream(false), {}), false);
    assert.equal(defaultColor(new FakeStream(true), {}), true);
    assert.equal(defaultColor(new FakeStream(true), { NO_COLOR: "1" }), false);
    assert.match(consoleRun({ color: true, out: new FakeStream(false) }), /\x1b\[\d+m/);
    // The default for a non-terminal stream: no colour codes at all.
    const plain = new FakeStream(false);
    const events = newEvents();
    createConsoleReporter({ out: plain }).attach(events);
    fakeRun(events);
    assert.doesNotMatch(plain.text, /\x1b\[/);
  });

  it("shows control characters from the endpoint as text, never as terminal commands", () => {
    const text = consoleRun({});
    assert.ok(text.includes("connection reset by peer bell\\x07esc\\x1b[31mred\\x00nul"), text);
    assert.doesNotMatch(text, /[\x00-\x08\x1b]/);
    assert.equal(terminalSafe("a\rb\tc\nd\x9b"), "a\\x0db\tc\nd\\x9b");
    assert.ok(CONTROL.includes("\x1b"));
  });
});

describe("chatconform report render", () => {
  async function render(file: string, format: string, output?: string) {
    let stdout = "";
    const errors: string[] = [];
    const code = await reportRenderCommand(file, { format, output }, { write: (t) => { stdout += t; }, err: (l = "") => errors.push(l) });
    return { code, stdout, stderr: errors.join("\n") };
  }

  let reportFile: string;
  before(async () => {
    reportFile = path.join((await liveRun(["json"])).outDir, "report.json");
  });

  it("renders html, junit and markdown from report.json to stdout or a file", async () => {
    const doc = prepareDocument(JSON.parse(readFileSync(reportFile, "utf8")) as ReportDocument);
    assert.deepEqual(await render(reportFile, "markdown"), { code: 0, stdout: renderMarkdown(doc), stderr: "" });
    assert.equal((await render(reportFile, "junit:transcript=all")).stdout, renderJunit(doc, { transcript: "all" }));
    const out = path.join(tmp(), "deep", "r.html");
    const result = await render(reportFile, "html", out);
    assert.equal(result.code, 0);
    assert.equal(readFileSync(out, "utf8"), renderHtml(doc));
    assert.match(result.stderr, /^wrote .*r\.html$/);
  });

  it("refuses a file that is not a report, listing every problem as path: message (exit 3)", async () => {
    const bad = path.join(tmp(), "report.json");
    const doc = JSON.parse(readFileSync(reportFile, "utf8")) as Record<string, unknown>;
    writeFileSync(bad, JSON.stringify({ ...doc, verdict: "fine", colour: "blue" }));
    const result = await render(bad, "html");
    assert.equal(result.code, 3);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /report\.json: verdict: must be one of/);
    assert.match(result.stderr, /report\.json: \(report\): unknown key "colour"/);
    writeFileSync(bad, "{ not json");
    assert.match((await render(bad, "html")).stderr, /not JSON/);
    assert.equal((await render(path.join(tmp(), "missing.json"), "html")).code, 3);
  });

  it("refuses an unknown format or option (exit 3)", async () => {
    const result = await render(reportFile, "pdf");
    assert.equal(result.code, 3);
    assert.match(result.stderr, /unknown format "pdf": use junit, html, markdown/);
    assert.match((await render(reportFile, "console")).stderr, /unknown format "console"/);
    assert.match((await render(reportFile, "html:theme=dark")).stderr, /unknown option "theme" for html/);
  });

  it("renders the report of a run that was cut short", async () => {
    const events = newEvents();
    const stats = statsFor(events);
    fakeRun(events, cases.slice(0, 2), { ...END, incomplete: true, incompleteReason: "interrupted: 3 selected case(s) did not run" });
    const doc = prepareDocument(stats.report());
    assert.deepEqual(validateReport(doc), []);
    assert.match(renderMarkdown(doc), /\*\*Run incomplete:\*\* interrupted: 3 selected case\(s\) did not run/);
    assert.match(renderHtml(doc), /<p class="incomplete">Run incomplete: interrupted: 3 selected case\(s\) did not run<\/p>/);
    assert.match(renderJunit(doc), /<property name="incomplete" value="true"\/>/);
  });
});
