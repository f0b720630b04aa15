import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { CaseResult, CaseStatus, CheckResult, Level, Requirement } from "../src/checks/model.ts";
import { PROFILE, RequirementsError, loadRequirements } from "../src/checks/requirements.ts";
import { aggregateRequirements, computeVerdict, exitCodeFor, summarize } from "../src/checks/verdict.ts";
import type { AggregateStatus } from "../src/checks/verdict.ts";
import { createConsoleReporter } from "../src/report/console.ts";
import { createJsonReporter, validateReport, writeReport } from "../src/report/json.ts";
import type { ReportDocument } from "../src/report/json.ts";
import { createStatsCollector, statsFor } from "../src/report/stats.ts";
import type { RunInfo, RunnerEvents } from "../src/runner/events.ts";

const SHA = "a".repeat(64);

function req(id: string, level: Level = "MUST"): Requirement {
  return { id, level, text: `${id} requirement text.`, source: "TPC/1 §0" };
}

function failed(requirement: string, evidence: number[] = [], over: Partial<CheckResult> = {}): CheckResult {
  return { requirement, ok: false, step: "steps[1] expect receipt m1", expected: `what ${requirement} expects`, actual: `what came for ${requirement}`, evidence, ...over };
}

function passed(requirement: string): CheckResult {
  return { requirement, ok: true, step: "steps[1] expect receipt m1", expected: `what ${requirement} expects`, actual: "as expected", evidence: [] };
}

function result(id: string, status: CaseStatus, requirements: string[], over: Partial<CaseResult> = {}): CaseResult {
  return {
    id, title: `Case ${id} title`, file: `cases/${id}.yaml`, area: id.split("/")[0]!, requirements, level: "MUST", tags: ["core"],
    status, durationMs: 12, timeoutWaitMs: 0, checks: [], failures: [], transcript: [], sha256: SHA, ...over,
  };
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "chatconform-report-"));

describe("requirements file", () => {
  it("loads the profile's requirements with unique well-formed ids", () => {
    const reqs = loadRequirements();
    assert.ok(reqs.length > 50);
    assert.equal(new Set(reqs.map((r) => r.id)).size, reqs.length);
    for (const r of reqs) assert.match(r.id, /^[A-Z]{3}-\d{2}$/);
    assert.deepEqual({ ...PROFILE }, { id: "TPC", version: "1" });
  });

  it("reports every problem of a broken file as path: message", () => {
    const file = path.join(tmp(), "requirements.yaml");
    writeFileSync(file, [
      "profile: { id: TPC, version: \"1\" }",
      "requirements:",
      "  - { id: ENC-01, level: MUST, text: a, source: b }",
      "  - { id: enc-2, level: MUST, text: a, source: b }",
      "  - { id: ENC-03, level: OFTEN, text: a, source: b, extra: 1 }",
    ].join("\n"));
    assert.throws(() => loadRequirements(file), (err: unknown) => {
      assert.ok(err instanceof RequirementsError);
      const text = err.problems.join("\n");
      assert.match(text, /requirements\.1\.id: must match pattern/);
      assert.match(text, /requirements\.2\.level: must be one of MUST, SHOULD, MAY/);
      assert.match(text, /requirements\.2: unknown key "extra"/);
      return true;
    });
    writeFileSync(file, "profile: { id: TPC, version: \"1\" }\nrequirements:\n  - { id: ENC-01, level: MUST, text: a, source: b }\n  - { id: ENC-01, level: MAY, text: c, source: d }\n");
    assert.throws(() => loadRequirements(file), /requirements\.1\.id: duplicate id ENC-01/);
  });
});

describe("requirement aggregation", () => {
  const requirements = ["PAS-01", "FAI-01", "ERR-01", "NTT-01", "OTH-01", "SKP-01", "UNC-01", "PRE-01", "PRE-02", "MIX-01", "LST-01", "LST-02"].map((id) => req(id));
  const cases = [
    result("a/pass", "pass", ["PAS-01"], { checks: [passed("PAS-01")] }),
    result("a/pass-skipped", "skip", ["PAS-01"]),
    result("a/fail", "fail", ["FAI-01", "OTH-01"], { failures: [failed("FAI-01")] }),
    result("a/error", "error", ["ERR-01"], { reason: "socket closed" }),
    result("a/error-peer", "pass", ["ERR-01"]),
    result("a/not-tested", "not-tested", ["NTT-01"], { reason: "hook block missing" }),
    result("a/skip1", "skip", ["SKP-01"]),
    result("a/skip2", "skip", ["SKP-01"]),
    // fail beats error: one case failed on PRE-01, another broke.
    result("a/pre-fail", "fail", ["PRE-01"], { failures: [failed("PRE-01")] }),
    result("a/pre-error", "error", ["PRE-01", "PRE-02"]),
    // error beats not-tested.
    result("a/pre-nt", "not-tested", ["PRE-02"]),
    // a failed check counts even in a case that then broke.
    result("a/mix", "error", ["MIX-01"], { failures: [failed("MIX-01")] }),
    // Listed but never checked: a passing case with no check on LST-01 does not make it pass…
    result("a/listed-only", "pass", ["LST-01", "LST-02"], { checks: [passed("PAS-01")] }),
    // …another passing case that checked it does.
    result("a/listed-checked", "pass", ["LST-02"], { checks: [passed("LST-02")] }),
  ];
  const table = new Map(aggregateRequirements(requirements, cases).map((r) => [r.id, r]));
  const expected: [string, AggregateStatus, string[]][] = [
    ["PAS-01", "pass", ["a/pass", "a/pass-skipped"]],
    ["FAI-01", "fail", ["a/fail"]],
    ["ERR-01", "error", ["a/error", "a/error-peer"]],
    ["NTT-01", "not-tested", ["a/not-tested"]],
    ["OTH-01", "not-tested", ["a/fail"]],
    ["SKP-01", "skip", ["a/skip1", "a/skip2"]],
    ["UNC-01", "uncovered", []],
    ["PRE-01", "fail", ["a/pre-fail", "a/pre-error"]],
    ["PRE-02", "error", ["a/pre-error", "a/pre-nt"]],
    ["MIX-01", "fail", ["a/mix"]],
    ["LST-01", "not-tested", ["a/listed-only"]],
    ["LST-02", "pass", ["a/listed-only", "a/listed-checked"]],
  ];
  for (const [id, status, covering] of expected) {
    it(`${id} → ${status}`, () => {
      const row = table.get(id)!;
      assert.equal(row.status, status);
      assert.deepEqual(row.cases, covering);
      assert.equal(row.text, `${id} requirement text.`);
    });
  }

  it("keeps the requirement order", () => {
    assert.deepEqual([...table.keys()], requirements.map((r) => r.id));
  });
});

describe("verdict", () => {
  const row = (level: Level, status: AggregateStatus) => ({ level, status });
  const table: [string, { level: Level; status: AggregateStatus }[], boolean, string][] = [
    ["all pass", [row("MUST", "pass"), row("SHOULD", "pass")], false, "compliant"],
    ["skip and an uncovered SHOULD change nothing", [row("MUST", "pass"), row("MUST", "skip"), row("SHOULD", "uncovered")], false, "compliant"],
    ["an uncovered MUST was never tested", [row("MUST", "pass"), row("MUST", "uncovered")], false, "incomplete"],
    ["a SHOULD fails", [row("MUST", "pass"), row("SHOULD", "fail")], false, "compliant-with-warnings"],
    ["a MAY is not tested", [row("MUST", "pass"), row("MAY", "not-tested")], false, "compliant-with-warnings"],
    ["a SHOULD errors", [row("MUST", "pass"), row("SHOULD", "error")], false, "compliant-with-warnings"],
    ["a MUST is not tested", [row("MUST", "not-tested"), row("SHOULD", "fail")], false, "incomplete"],
    ["a MUST errors", [row("MUST", "error")], false, "incomplete"],
    ["the run was cut short", [row("MUST", "pass")], true, "incomplete"],
    ["a MUST fails", [row("MUST", "fail"), row("MUST", "not-tested")], true, "non-compliant"],
  ];
  for (const [name, rows, incomplete, verdict] of table) {
    it(`${name} → ${verdict}`, () => assert.equal(computeVerdict(rows, { incomplete }), verdict));
  }

  it("maps verdicts to exit codes", () => {
    assert.equal(exitCodeFor("compliant"), 0);
    assert.equal(exitCodeFor("compliant-with-warnings"), 0);
    assert.equal(exitCodeFor("non-compliant"), 1);
    assert.equal(exitCodeFor("incomplete"), 2);
  });

  it("summarizes case statuses", () => {
    const statuses: CaseStatus[] = ["pass", "pass", "fail", "error", "not-tested", "skip", "skip"];
    assert.deepEqual(summarize(statuses.map((s, i) => result(`a/c${i}`, s, ["ENC-01"]))), { total: 7, pass: 2, fail: 1, error: 1, notTested: 1, skip: 2 });
  });
});

// ---- a fake runner driving the reporters

const SECRET = 'hunter2"s3cr3t\\pw';
const LONG = `<message>${"x".repeat(2000)}</message>`;

const runInfo: RunInfo = {
  suite: { name: "chatconform", version: "0.1.0" },
  profile: { id: "TPC", version: "1" },
  endpoint: "xmpp://127.0.0.1:5222",
  endpointDescription: "fake endpoint",
  policy: "eea",
  startedAt: "2025-01-01T10:00:00.000Z",
  command: "chatconform run",
  caseSetSha256: SHA,
  selection: { total: 5, selected: 4, filters: ["--area enc"] },
  node: "v20.19.0",
  platform: "linux-x64",
};

const fakeRequirements = [req("ENC-06"), req("ENC-10"), req("ENC-03", "SHOULD"), req("ENC-20"), req("LIF-02"), req("TRN-01")];

const fakeCases: CaseResult[] = [
  result("enc/text-roundtrip", "pass", ["ENC-06"], { durationMs: 42, checks: [{ ...failed("ENC-06"), ok: true }] }),
  result("enc/replay", "fail", ["ENC-06", "ENC-10"], {
    durationMs: 310,
    failures: [failed("ENC-10", [2, 99], { expected: "exactly one receipt for m1", actual: "2 receipts" })],
    transcript: [
      { seq: 1, t: 5, actor: "alice", direction: "out", xml: `<message id='m1'><auth>${SECRET}</auth></message>`, decrypted: `{"text":"hi ${SECRET}"}` },
      { seq: 2, t: 120, actor: "alice", direction: "in", xml: "<message id='r2'><received id='m1'/></message>", decrypted: '{"kind":"receipt"}', note: "second receipt" },
    ],
  }),
  result("enc/prekeys", "not-tested", ["ENC-03"], { level: "SHOULD", reason: "hook state missing" }),
  result("lif/hooks", "error", ["LIF-02"], { reason: "connection reset by peer" }),
  result("trn/starttls", "skip", ["TRN-01"], { reason: "filtered out by --area enc", durationMs: 0 }),
];

class FakeStream {
  text = "";
  isTTY = false;
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

function fakeRun(events: EventEmitter<RunnerEvents>, cases: CaseResult[] = fakeCases, end = { finishedAt: "2025-01-01T10:00:02.500Z", incomplete: false }): void {
  events.emit("run:start", runInfo, fakeRequirements);
  for (const c of cases) {
    events.emit("case:start", { id: c.id, title: c.title, file: c.file, area: c.area, requirements: c.requirements });
    events.emit("step", { caseId: c.id, index: 0, description: "connect alice" });
    events.emit("case:end", c);
  }
  events.emit("run:end", end);
}

describe("stats collector", () => {
  it("subscribes once per runner and builds the report document", () => {
    const events = new EventEmitter<RunnerEvents>();
    const stats = statsFor(events);
    assert.equal(statsFor(events), stats);
    stats.attach(events);
    assert.equal(events.listenerCount("case:end"), 1);
    fakeRun(events);
    assert.equal(stats.cases.length, fakeCases.length);
    const doc = stats.report();
    assert.equal(doc.verdict, "non-compliant");
    assert.deepEqual(doc.uncovered, ["ENC-20"]);
    assert.deepEqual(doc.cases.map((c) => c.id), [...fakeCases.map((c) => c.id)].sort());
    assert.equal(doc.incompleteReason, undefined);
    assert.deepEqual(validateReport(doc), []);
  });

  it("describes a run that has not ended as incomplete", () => {
    const events = new EventEmitter<RunnerEvents>();
    const stats = createStatsCollector().attach(events);
    assert.throws(() => stats.report(), /no run has started/);
    events.emit("run:start", runInfo, fakeRequirements);
    events.emit("case:end", fakeCases[0]!);
    const doc = stats.report();
    assert.equal(doc.incomplete, true);
    assert.equal(doc.verdict, "incomplete");
    assert.deepEqual(validateReport(doc), []);
  });
});

describe("json reporter", () => {
  it("writes a valid report.json with the expected statuses and no secret", async () => {
    const outDir = path.join(tmp(), "nested", "run");
    const events = new EventEmitter<RunnerEvents>();
    const reporter = createJsonReporter({ outDir, secrets: [SECRET, ""] });
    reporter.attach(events);
    fakeRun(events);
    const file = await reporter.done;
    assert.equal(file, path.join(outDir, "report.json"));
    const text = readFileSync(file, "utf8");
    assert.ok(!text.includes(SECRET), "the secret is in the file");
    assert.ok(!text.includes(JSON.stringify(SECRET).slice(1, -1)), "the JSON-escaped secret is in the file");
    assert.ok(!text.includes("hunter2"));
    assert.ok(text.includes("[redacted]"));

    const doc = JSON.parse(text) as ReportDocument;
    assert.deepEqual(validateReport(doc), []);
    assert.equal(doc.format, 1);
    assert.equal(doc.verdict, "non-compliant");
    assert.equal(doc.incomplete, false);
    assert.deepEqual(doc.summary, { total: 5, pass: 1, fail: 1, error: 1, notTested: 1, skip: 1 });
    const status = Object.fromEntries(doc.requirements.map((r) => [r.id, r.status]));
    assert.deepEqual(status, { "ENC-06": "not-tested", "ENC-10": "fail", "ENC-03": "not-tested", "ENC-20": "uncovered", "LIF-02": "error", "TRN-01": "skip" });
    assert.deepEqual(doc.requirements.find((r) => r.id === "ENC-06")!.cases, ["enc/text-roundtrip", "enc/replay"]);
    assert.deepEqual(doc.uncovered, ["ENC-20"]);
    const replay = doc.cases.find((c) => c.id === "enc/replay")!;
    assert.equal(replay.status, "fail");
    assert.deepEqual(replay.failures, [{ requirement: "ENC-10", step: "steps[1] expect receipt m1", expected: "exactly one receipt for m1", actual: "2 receipts", evidence: [2, 99] }]);
    assert.equal(replay.transcript[0]!.xml, "<message id='m1'><auth>[redacted]</auth></message>");
    assert.equal(replay.transcript[0]!.decrypted, '{"text":"hi [redacted]"}');
    assert.equal(doc.run.selection.selected, 4);
    assert.equal("mutant" in doc.run, false);
  });

  it("rejects a document that breaks the schema, listing every problem as path: message", () => {
    const events = new EventEmitter<RunnerEvents>();
    const stats = statsFor(events);
    fakeRun(events);
    const doc = JSON.parse(JSON.stringify(stats.report())) as Record<string, unknown> & { cases: Record<string, unknown>[] };
    doc.colour = "blue";
    doc.verdict = "fine";
    doc.cases[0]!.status = "passed";
    (doc.cases[1]!.failures as Record<string, unknown>[]).push({ requirement: "ENC-10", step: "", expected: "", actual: "", evidence: [], extra: 1 });
    const problems = validateReport(doc);
    assert.ok(problems.includes('(report): unknown key "colour"'), problems.join("\n"));
    assert.ok(problems.some((p) => p.startsWith("verdict: must be one of")), problems.join("\n"));
    assert.ok(problems.some((p) => p.startsWith("cases.0.status: must be one of")), problems.join("\n"));
    assert.ok(problems.includes('cases.1.failures.1: unknown key "extra"'), problems.join("\n"));
  });

  it("writeReport redacts and creates the directory", async () => {
    const events = new EventEmitter<RunnerEvents>();
    const stats = statsFor(events);
    fakeRun(events);
    const file = await writeReport(stats.report(), path.join(tmp(), "a", "b"), ["connection reset"]);
    const text = readFileSync(file, "utf8");
    assert.ok(!text.includes("connection reset"));
    assert.ok(text.includes("[redacted] by peer"));
  });
});

describe("console reporter", () => {
  function consoleRun(options: { verbose?: boolean } = {}, cases = fakeCases, end?: { finishedAt: string; incomplete: boolean; incompleteReason?: string }): string {
    const out = new FakeStream();
    const events = new EventEmitter<RunnerEvents>();
    const reporter = createConsoleReporter({ out, color: false, ...options });
    reporter.attach(events);
    reporter.setReportPath("reports/latest/report.json");
    fakeRun(events, cases, end);
    return out.text;
  }

  it("prints the header, one line per case, Expected/Actual with evidence, the summary and the verdict", () => {
    const text = consoleRun();
    const lines = text.split("\n");
    assert.ok(!text.includes("\x1b["), "colour codes with color: false");
    assert.match(lines[0]!, /^chatconform 0\.1\.0 · TPC\/1 · endpoint xmpp:\/\/127\.0\.0\.1:5222 \(fake endpoint\) · policy eea · 4 of 5 cases selected$/);
    assert.ok(lines.includes("✔ enc/text-roundtrip  Case enc/text-roundtrip title (42 ms)"), text);
    assert.ok(lines.includes("✖ enc/replay  Case enc/replay title (310 ms)"));
    assert.ok(lines.includes("○ enc/prekeys  Case enc/prekeys title (12 ms)"));
    assert.ok(lines.includes("    not tested: hook state missing"));
    assert.ok(lines.includes("! lif/hooks  Case lif/hooks title (12 ms)"));
    assert.ok(lines.includes("    error: connection reset by peer"));
    // Filtered-out cases are counted in the summary, listed one by one only when verbose.
    assert.ok(!text.includes("trn/starttls"), text);
    assert.ok(consoleRun({ verbose: true }).split("\n").includes("- trn/starttls  Case trn/starttls title — filtered out by --area enc"));

    const at = lines.indexOf("    ENC-10  Expected: exactly one receipt for m1");
    assert.ok(at > 0, text);
    assert.deepEqual(lines.slice(at + 1, at + 8), [
      "            Actual:   2 receipts",
      "            Step:     steps[1] expect receipt m1",
      "            #2 +120 ms alice received (second receipt):",
      "              <message id='r2'><received id='m1'/></message>",
      "              decrypted:",
      '                {"kind":"receipt"}',
      "            #99 (no such entry in the transcript)",
    ]);

    assert.ok(lines.includes("5 cases: 1 pass, 1 fail, 1 error, 1 not-tested, 1 skip (2.5 s)"), text);
    assert.ok(lines.includes("6 requirements: 0 pass, 1 fail, 1 error, 2 not-tested, 1 skip, 1 uncovered"), text);
    assert.ok(lines.includes("Failed requirements:"));
    assert.ok(lines.includes("  ENC-10 MUST   ENC-10 requirement text."));
    assert.ok(lines.includes("  LIF-02 MUST   LIF-02 requirement text. (error)"));
    assert.ok(lines.includes("Uncovered (no case): ENC-20 (MUST)"));
    assert.ok(lines.includes("Verdict: non-compliant"));
    assert.ok(lines.includes("Report: reports/latest/report.json"));
  });

  it("truncates long stanzas unless verbose", () => {
    const long = [result("enc/long", "fail", ["ENC-06"], {
      failures: [failed("ENC-06", [1])],
      transcript: [{ seq: 1, t: 0, actor: "bob", direction: "out", xml: LONG }],
    })];
    const short = consoleRun({}, long);
    assert.ok(!short.includes(LONG));
    assert.match(short, /x… \[1419 more chars; --verbose shows all\]/);
    assert.ok(consoleRun({ verbose: true }, long).includes(LONG));
  });

  it("says why a run is incomplete", () => {
    const text = consoleRun({}, fakeCases.filter((c) => c.status === "pass"), { finishedAt: "2025-01-01T10:00:01.000Z", incomplete: true, incompleteReason: "interrupted: 3 selected case(s) did not run" });
    assert.match(text, /^Run incomplete: interrupted: 3 selected case\(s\) did not run$/m);
    assert.match(text, /^Verdict: incomplete$/m);
  });
});
