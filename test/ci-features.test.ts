// The CI features (issue 7): --shard, merge, diff, --expect. The reports are real: small case
// selections run against the built-in partner (compliant, and the plaintext-accepted mutant) in a
// temporary directory; the refusals use copies of them with one field changed. Nothing is stored.
import { renderMarkdown } from "../src/report/markdown.ts";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CaseDefinition } from "../src/cases/loader.ts";
import { SelectionError, assignShards, parseShard, selectCases } from "../src/cases/select.ts";
import type { CaseStatus, Level } from "../src/checks/model.ts";
import { aggregateRequirements, summarize } from "../src/checks/verdict.ts";
import type { AggregateStatus } from "../src/checks/verdict.ts";
import { recomputeVerdict } from "../src/report/bundle.ts";
import { diffCommand } from "../src/cli/diff.ts";
import { diffReports, formatDiff } from "../src/report/diff.ts";
import type { ReportDiff } from "../src/report/diff.ts";
import { ExpectationsError, evaluateExpectations, exitCodeWithExpectations, normaliseExpectations, statusWithExpectations } from "../src/report/expect.ts";
import type { CaseView, ExpectationList } from "../src/report/expect.ts";
import { validateReport } from "../src/report/json.ts";
import type { ReportDocument } from "../src/report/json.ts";
import { MergeError, mergeReports } from "../src/report/merge.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = path.join(root, "bin", "chatconform.js");
const SELECTION = "transport/,encryption/plaintext-refused";
const MUTANT = "plaintext-accepted";
const FAILING = "encryption/plaintext-refused";

function cli(args: string[], cwd = root) {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8")) as ReportDocument;
const statuses = (doc: ReportDocument) => Object.fromEntries(doc.cases.map((c) => [c.id, c.status]));
const requirementStatuses = (doc: ReportDocument) => Object.fromEntries(doc.requirements.map((r) => [r.id, r.status]));
const ran = (doc: ReportDocument) => doc.cases.filter((c) => c.status !== "skip").map((c) => c.id).sort();

describe("CI features with real reports (--shard, merge, diff, --expect)", function () {
  this.timeout(300_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-ci-"));
  const file = (name: string) => path.join(dir, name);
  const reports: Record<string, string> = {};
  const runs: Record<string, ReturnType<typeof cli>> = {};

  /** Run the CLI into its own reports directory and remember report.json as `name`. */
  function run(name: string, args: string[]) {
    const out = file(`runs-${name}`);
    const result = cli(["run", "--out", out, "--case", SELECTION, ...args]);
    runs[name] = result;
    reports[name] = path.join(out, "latest", "report.json");
    assert.ok(existsSync(reports[name]!), `${name}: no report.json (exit ${result.code})\n${result.stdout}${result.stderr}`);
    return result;
  }

  /** A copy of a real report with something changed, written next to it. */
  function variant(from: string, name: string, change: (doc: ReportDocument) => void): string {
    const doc = readJson(reports[from]!);
    change(doc);
    const target = file(`${name}.json`);
    writeFileSync(target, JSON.stringify(doc, null, 2));
    return target;
  }

  before(() => {
    writeFileSync(file("known.yaml"), [
      "format: 1",
      "expected:",
      `  ${FAILING}:`,
      '    reason: "partner ticket 42: a plaintext body is delivered"',
      "    until: 2999-12-31",
      "",
    ].join("\n"));
    writeFileSync(file("stale.yaml"), [
      "format: 1",
      "expected:",
      "  ENC-14:",
      "    reason: plaintext delivered",
      "  transport/starttls-required:",
      "    reason: fixed long ago",
      "  transport/unknown-iq:",
      "    reason: an entry past its date",
      "    until: 2020-01-01",
      "  MED-10:",
      "    reason: no media case is selected here",
      "",
    ].join("\n"));
    run("reference", ["--quiet"]);
    run("mutant", ["--partner-mutant", MUTANT, "--quiet", "--jobs", "3"]);
    // The shards run with different --jobs: the split does not depend on it.
    for (const i of [1, 2, 3]) run(`shard${i}`, ["--partner-mutant", MUTANT, "--shard", `${i}/3`, "--jobs", String(i), "--expect", file("known.yaml"), "--quiet"]);
    run("expected", ["--partner-mutant", MUTANT, "--expect", file("known.yaml")]);
    run("stale", ["--partner-mutant", MUTANT, "--expect", file("stale.yaml")]);
  });

  describe("--shard", () => {
    it("splits the selection into disjoint shards whose union is the selection, recorded in run.selection", () => {
      const full = readJson(reports.mutant!);
      const shards = [1, 2, 3].map((i) => readJson(reports[`shard${i}`]!));
      const parts = shards.map(ran);
      assert.deepEqual(parts.flat().sort(), ran(full), "every selected case in exactly one shard");
      assert.equal(new Set(parts.flat()).size, parts.flat().length);
      for (const [k, doc] of shards.entries()) {
        assert.deepEqual(validateReport(doc), []);
        assert.deepEqual(doc.run.selection.shard, { index: k + 1, count: 3 });
        assert.equal(doc.run.selection.selected, parts[k]!.length);
        assert.deepEqual(doc.run.selection.filters, full.run.selection.filters, "the shard is not a filter");
        // The cases of the other shards are skipped, and say where they are.
        for (const c of doc.cases.filter((x) => x.status === "skip" && ran(full).includes(x.id))) assert.match(c.reason!, new RegExp(`^in shard [123]/3, not in this run's --shard ${k + 1}/3$`));
      }
      // Sizes differ by at most one, and the split is the one assignShards computes from the ids alone.
      const sizes = parts.map((p) => p.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `sizes ${sizes}`);
      const expected = assignShards(ran(full), 3);
      for (const [k, part] of parts.entries()) for (const id of part) assert.equal(expected.get(id), k + 1, id);
      assert.equal(full.run.selection.shard, undefined, "an unsharded run records no shard");
    });

    it("a bad --shard is a usage error (exit 3) before anything runs", () => {
      const out = file("runs-bad-shard");
      for (const bad of ["4/3", "0/3", "1/0", "2", "a/b", "1/1001"]) {
        const result = cli(["run", "--out", out, "--shard", bad]);
        assert.equal(result.code, 3, bad);
        assert.match(result.stderr, /--shard <i\/n>.*must be i\/n/, bad);
      }
      assert.equal(existsSync(out), false, "no run directory");
    });
  });

  describe("merge", () => {
    it("the shards merged equal the full run case for case, requirement for requirement, verdict and all", () => {
      const target = file("merged.json");
      const result = cli(["merge", reports.shard3!, reports.shard1!, reports.shard2!, "-o", target]);
      const merged = readJson(target);
      const full = readJson(reports.mutant!);
      assert.deepEqual(statuses(merged), statuses(full));
      assert.deepEqual(requirementStatuses(merged), requirementStatuses(full));
      assert.deepEqual(merged.summary, full.summary);
      assert.equal(merged.verdict, full.verdict);
      assert.equal(merged.verdict, "non-compliant");
      assert.deepEqual(validateReport(merged), []);
      assert.deepEqual(recomputeVerdict(merged).problems, [], "verify's recomputation agrees with the merged verdict");
      assert.equal(merged.incomplete, false);
      assert.deepEqual(merged.run.selection, { total: full.run.selection.total, selected: full.run.selection.selected, filters: full.run.selection.filters });
      assert.deepEqual(merged.run.mergedFrom!.map((m) => m.shard), [{ index: 1, count: 3 }, { index: 2, count: 3 }, { index: 3, count: 3 }]);
      assert.equal(merged.run.caseSetSha256, full.run.caseSetSha256);
      assert.match(merged.run.command, /^chatconform merge /);
      // Each case is the one its shard ran, transcript and all.
      const shard1 = readJson(reports.shard1!);
      const failing = shard1.cases.find((c) => c.id === FAILING)!;
      assert.equal(failing.status, "fail", "the failing case is in shard 1");
      assert.deepEqual(merged.cases.find((c) => c.id === FAILING), failing);
      // The shards' known failures are evaluated again on the merged cases: the exit code is 0.
      assert.equal(merged.expectations!.entries[0]!.outcome, "expected-and-failed");
      assert.deepEqual(merged.expectations!.excused, ["ENC-14"]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.stderr.includes(`merged 3 report(s): ${ran(full).length} case(s) ran, ${full.summary.pass} pass, ${full.summary.fail} fail`), result.stderr);
      assert.match(result.stderr, /verdict non-compliant — .*merged\.json/);
      assert.match(result.stderr, /exit 0: every MUST failure is a known failure \(the verdict stays non-compliant\)/);
      // In shard 2 the listed case did not run: unmatched there, and nothing to excuse.
      assert.equal(readJson(reports.shard2!).expectations!.entries[0]!.outcome, "unmatched");
    });

    it("without a list the merge exits as run would; to stdout by default", () => {
      const shardsWithoutList = [1, 2, 3].map((i) => variant(`shard${i}`, `plain-shard${i}`, (d) => delete d.expectations));
      const result = cli(["merge", ...shardsWithoutList]);
      assert.equal(result.code, 1, result.stderr);
      const merged = JSON.parse(result.stdout) as ReportDocument;
      assert.equal(merged.verdict, "non-compliant");
      assert.equal(merged.expectations, undefined);
    });

    it("a missing shard makes the merged report incomplete and names it", () => {
      const target = file("partial.json");
      const result = cli(["merge", reports.shard2!, reports.shard3!, "-o", target]);
      const merged = readJson(target);
      assert.equal(merged.incomplete, true);
      assert.match(merged.incompleteReason!, /shard 1\/3 missing/);
      assert.equal(merged.verdict, "incomplete");
      assert.deepEqual(validateReport(merged), []);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /note: shard 1\/3 missing: the merged report is incomplete/);
    });

    it("refuses overlapping shards, and a shard mixed with a full run (exit 3, nothing written)", () => {
      const target = file("never.json");
      const twice = cli(["merge", reports.shard1!, reports.shard2!, reports.shard1!, "-o", target]);
      assert.equal(twice.code, 3);
      assert.match(twice.stderr, /overlapping shards: .*shard1.*report\.json and .*shard1.*report\.json are both shard 1\/3/);
      const mixed = cli(["merge", reports.shard1!, reports.mutant!, "-o", target]);
      assert.equal(mixed.code, 3);
      assert.match(mixed.stderr, /not a shard, but .* is: merge the shards of one split/);
      const sameRunTwice = cli(["merge", reports.mutant!, reports.mutant!, "-o", target]);
      assert.equal(sameRunTwice.code, 3);
      assert.match(sameRunTwice.stderr, /overlapping reports: case encryption\/plaintext-refused ran in .* and /);
      assert.equal(existsSync(target), false);
    });

    it("refuses reports of different suite versions, case sets, policies or endpoints, every reason at once", () => {
      const other = variant("shard2", "other-run", (d) => {
        d.suite.version = "9.9.9";
        d.run.caseSetSha256 = "b".repeat(64);
        d.run.policy = "whatsapp-european-region";
        d.run.endpointDescription = "config partner.yaml";
        d.endpoint = "xmpps://xmpp.partner.example:5223";
      });
      const result = cli(["merge", reports.shard1!, other, reports.shard3!]);
      assert.equal(result.code, 3);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /cannot merge: 4 problem\(s\)/);
      assert.match(result.stderr, /other-run\.json: was made by suite chatconform 9\.9\.9, but .*shard1.* has chatconform \d/);
      assert.match(result.stderr, /other-run\.json: ran a different case set: caseSetSha256 b{64}, but .* has [0-9a-f]{64}/);
      assert.match(result.stderr, /other-run\.json: ran under policy whatsapp-european-region, but .* has eea/);
      assert.match(result.stderr, /other-run\.json: ran against endpoint xmpps:\/\/xmpp\.partner\.example:5223 .*, but .* has the built-in reference partner/);
      // A different mutant is a different endpoint too; and the reference run is no shard.
      const differentPartner = variant("reference", "reference-as-shard", (d) => {
        d.run.selection.shard = { index: 2, count: 3 };
      });
      const partner = cli(["merge", reports.shard1!, differentPartner]);
      assert.equal(partner.code, 3);
      assert.match(partner.stderr, /ran against mutant none, but .* has plaintext-accepted/);
      assert.match(partner.stderr, /has known failures \(--expect\) none, but .* has 1 entries/);
    });

    it("files that are not reports are misuse (exit 3)", () => {
      writeFileSync(file("not-a-report.json"), JSON.stringify({ verdict: "compliant" }));
      const result = cli(["merge", reports.shard1!, file("not-a-report.json"), file("missing.json")]);
      assert.equal(result.code, 3);
      assert.match(result.stderr, /not-a-report\.json: \(report\): must have required property 'format'/);
      assert.match(result.stderr, /missing\.json: cannot read: ENOENT/);
    });
  });

  describe("diff", () => {
    const json = (args: string[]) => {
      const result = cli(["diff", "--json", ...args]);
      return { code: result.code, diff: JSON.parse(result.stdout) as ReportDiff };
    };

    it("reference → mutant: the case and the requirement regressed, exit 1", () => {
      const result = cli(["diff", reports.reference!, reports.mutant!]);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, /^Regressed \(2\):\n  requirement ENC-14  MUST  pass → fail\n  case        encryption\/plaintext-refused  pass → fail$/m);
      assert.match(result.stdout, /^Fixed \(0\)$/m);
      assert.match(result.stdout, /^Unchanged: \d+ case\(s\), \d+ requirement\(s\)$/m);
      assert.match(result.stdout, /^Verdict: compliant → non-compliant$/m);
      assert.match(result.stdout, /note: the runs differ in mutant: none → plaintext-accepted/);
      assert.match(result.stdout, /^REGRESSION: 1 case\(s\) and 1 requirement\(s\)/m);
      const { code, diff } = json([reports.reference!, reports.mutant!]);
      assert.equal(code, 1);
      assert.equal(diff.regression, true);
      assert.deepEqual(diff.regressed.map((c) => `${c.kind} ${c.id} ${c.old}→${c.new}`), ["requirement ENC-14 pass→fail", `case ${FAILING} pass→fail`]);
      const full = readJson(reports.mutant!);
      assert.equal(diff.unchanged.cases, full.cases.length - 1);
      assert.equal(diff.unchanged.requirements, full.requirements.length - 1);
    });

    it("mutant → reference: fixed, exit 0", () => {
      const { code, diff } = json([reports.mutant!, reports.reference!]);
      assert.equal(code, 0);
      assert.equal(diff.regression, false);
      assert.deepEqual(diff.fixed.map((c) => c.id), ["ENC-14", FAILING]);
      assert.deepEqual(diff.regressed, []);
    });

    it("a case that passed and is not run now (another shard) is lost coverage, a regression; one not selected before is another change", () => {
      const { code, diff } = json([reports.reference!, reports.shard2!]);
      assert.equal(code, 1, "pass → skip is lost coverage");
      const shard2 = readJson(reports.shard2!);
      const lost = diff.regressed.filter((c) => c.kind === "case" && c.new === "skip");
      assert.equal(lost.length, ran(readJson(reports.reference!)).length - ran(shard2).length);
      assert.ok(lost.every((c) => c.old === "pass" && c.coverageLost === true));
      assert.ok(diff.regressed.some((c) => c.kind === "requirement" && c.new === "skip" && c.coverageLost), "a requirement whose cases all ran elsewhere");
      assert.deepEqual(diff.changed.filter((c) => c.kind === "case"), []);
      assert.match(cli(["diff", reports.reference!, reports.shard2!]).stdout, /^  case {8}\S+  pass → skip  \(coverage lost\)$/m);
      // skip → fail: the case did not pass before, so it is no regression (it is listed as a change).
      const back = json([reports.shard2!, reports.mutant!]);
      assert.equal(back.code, 0);
      assert.deepEqual(back.diff.regressed, []);
      assert.ok(back.diff.changed.some((c) => c.kind === "case" && c.id === FAILING && c.old === "skip" && c.new === "fail"));
    });

    it("new and removed cases and requirements; a MUST that goes from pass to not-tested is a regression", () => {
      const changed = variant("reference", "catalogue-changed", (d) => {
        const unknownIq = d.cases.find((c) => c.id === "transport/unknown-iq")!;
        d.cases = d.cases.filter((c) => c.id !== "transport/offline-delivery");
        d.cases.push({ ...structuredClone(unknownIq), id: "transport/zz-new-case", title: "A case added to the catalogue" });
        unknownIq.status = "not-tested";
        unknownIq.reason = "the endpoint exposes no hook";
        unknownIq.checks = [];
        d.requirements = d.requirements.filter((r) => r.id !== "MED-10");
        d.requirements.push({ id: "ZZZ-01", level: "SHOULD", text: "A requirement added to the profile.", source: "TPC/1", status: "uncovered", cases: [] });
        const rows = aggregateRequirements(d.requirements, d.cases.map((c) => ({ ...c, failures: c.failures.map((f) => ({ ...f, ok: false })) })));
        d.requirements = rows;
        d.uncovered = rows.filter((r) => r.status === "uncovered").map((r) => r.id);
        d.summary = summarize(d.cases);
      });
      assert.deepEqual(validateReport(readJson(changed)), []);
      const { code, diff } = json([reports.reference!, changed]);
      assert.equal(code, 1);
      assert.deepEqual(diff.added.map((p) => `${p.kind} ${p.id}`), ["requirement ZZZ-01", "case transport/zz-new-case"]);
      assert.deepEqual(diff.removed.map((p) => `${p.kind} ${p.id}`), ["requirement MED-10", "case transport/offline-delivery"]);
      const notTested = diff.regressed.filter((c) => c.new === "not-tested");
      assert.ok(notTested.some((c) => c.kind === "requirement" && c.level === "MUST"), JSON.stringify(diff.regressed));
      assert.ok(notTested.some((c) => c.kind === "case" && c.id === "transport/unknown-iq"));
      // A case that passed and left the catalogue is lost coverage as well (and listed under Removed).
      assert.ok(diff.regressed.some((c) => c.kind === "case" && c.id === "transport/offline-delivery" && c.new === "missing" && c.coverageLost));
      const text = cli(["diff", reports.reference!, changed]).stdout;
      assert.match(text, /^New \(2\):\n  requirement ZZZ-01  SHOULD  uncovered\n  case        transport\/zz-new-case  pass$/m);
      assert.match(text, /^Removed \(2\):\n  requirement MED-10  SHOULD  skip\n  case        transport\/offline-delivery  pass$/m);
    });

    it("misuse: a missing file or a file that is not a report exits 3", () => {
      const missing = cli(["diff", reports.reference!, file("nope.json")]);
      assert.equal(missing.code, 3);
      assert.match(missing.stderr, /nope\.json: cannot read: ENOENT/);
      writeFileSync(file("garbage.json"), "{ not json");
      const garbage = cli(["diff", file("garbage.json"), reports.reference!]);
      assert.equal(garbage.code, 3);
      assert.match(garbage.stderr, /garbage\.json: not JSON/);
      assert.equal(cli(["diff", reports.reference!]).code, 3, "two reports are needed");
    });
  });

  describe("--expect", () => {
    it("an expected failure that fails is reported but does not fail the run; the verdict stays verdict.ts's", () => {
      const result = runs.expected!;
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /^Verdict: non-compliant$/m);
      assert.match(result.stdout, /^Known failures \(.*known\.yaml\): 1 failed as expected, 0 passed, 0 expired, 0 unmatched$/m);
      assert.match(result.stdout, /✖ encryption\/plaintext-refused \(until 2999-12-31\)  failed, as expected — partner ticket 42/);
      assert.match(result.stdout, /^exit 0: every MUST failure is a known failure \(the verdict stays non-compliant\); excused MUST requirement\(s\): ENC-14$/m);
      const doc = readJson(reports.expected!);
      assert.deepEqual(validateReport(doc), []);
      assert.equal(doc.verdict, "non-compliant");
      assert.deepEqual(recomputeVerdict(doc).problems, []);
      assert.equal(doc.expectations!.file, file("known.yaml"));
      assert.equal(doc.expectations!.date, doc.startedAt.slice(0, 10));
      assert.deepEqual(doc.expectations!.entries, [{
        id: FAILING, kind: "case", reason: "partner ticket 42: a plaintext body is delivered", until: "2999-12-31",
        outcome: "expected-and-failed", status: "fail", detail: "failed, as expected",
      }]);
      assert.deepEqual(doc.expectations!.excused, ["ENC-14"]);
      // The Markdown summary a CI step shows says why a non-compliant run exits 0.
      const markdown = renderMarkdown(doc);
      assert.match(markdown, /### Known failures/);
      assert.match(markdown, /1 failed as expected, 0 passed, 0 expired, 0 unmatched\. exit 0: every MUST failure is a known failure/);
      assert.match(markdown, /\| `encryption\/plaintext-refused` \| expected-and-failed \| partner ticket 42/);
    });

    it("an expected failure that passes fails the run: remove it from the list; expired and unmatched entries are reported", () => {
      const result = runs.stale!;
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, /1 failed as expected, 1 passed \(remove it from the list\), 1 expired, 1 unmatched/);
      assert.match(result.stdout, /! transport\/starttls-required  passed: remove it from the list \(listed because: fixed long ago\)/);
      assert.match(result.stdout, /⌛ transport\/unknown-iq \(until 2020-01-01\)  expired on 2020-01-01 .*: it excuses nothing; pass in this run/);
      assert.match(result.stdout, /^exit 1: transport\/starttls-required passed though listed as known failure: remove it from the list/m);
      const outcomes = Object.fromEntries(readJson(reports.stale!).expectations!.entries.map((e) => [e.id, e.outcome]));
      assert.deepEqual(outcomes, { "ENC-14": "expected-and-failed", "transport/starttls-required": "unexpectedly-passed", "transport/unknown-iq": "expired", "MED-10": "unmatched" });
    });

    it("every problem of a bad list at once as path: message, exit 3, before anything runs", () => {
      writeFileSync(file("bad.yaml"), [
        "format: 2",
        "expected:",
        "  encryption/no-such-case: { reason: x }",
        "  ENC-99: { reason: y }",
        "  Not An Id: { reason: z }",
        "  transport/unknown-iq: { until: 2026-02-30, note: hi }",
        "  transport/starttls-required: { reason: '  ', until: tomorrow }",
        "",
      ].join("\n"));
      const out = file("runs-bad-list");
      const result = cli(["run", "--out", out, "--case", "transport/", "--expect", file("bad.yaml")]);
      assert.equal(result.code, 3);
      assert.equal(existsSync(out), false, "no run directory");
      const lines = result.stderr.trim().split("\n");
      assert.match(lines[0]!, /bad\.yaml: 9 problem\(s\):$/);
      for (const expected of [
        "format: must be 1",
        "expected.transport/unknown-iq.reason: required",
        'expected.transport/unknown-iq: unknown key "note"',
        "expected.transport/starttls-required.reason: must say why (not empty)",
        "expected.transport/starttls-required.until: must be a date YYYY-MM-DD",
        "expected.encryption/no-such-case: no case has this id (see chatconform list)",
        "expected.ENC-99: no requirement has this id (see chatconform requirements)",
        "expected.Not An Id: is neither a case id (area/slug) nor a requirement id (ABC-01)",
        "expected.transport/unknown-iq.until: 2026-02-30 is not a date",
      ]) assert.ok(lines.includes(`  ${expected}`), `${expected}\n${result.stderr}`);
      assert.equal(cli(["run", "--out", out, "--expect", file("no-such.yaml")]).code, 3);
    });

    it("without the console reporter the known failures and the exit go to stderr", () => {
      const out = file("runs-expect-json");
      const result = cli(["run", "--out", out, "--case", FAILING, "--partner-mutant", MUTANT, "--expect", file("known.yaml"), "--reporter", "json"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /^non-compliant — .*report\.json\nknown failures \(.*known\.yaml\): 1 failed as expected.*\nexit 0: every MUST failure is a known failure/m);
      assert.deepEqual(readdirSync(path.join(out, "latest")), ["report.json"]);
    });
  });
});

// ---- unit tests with inline fixtures

function caseDef(id: string, tags: string[] = ["smoke"]): CaseDefinition {
  return { id, title: `Case ${id}`, tags } as unknown as CaseDefinition;
}

describe("shard selection", () => {
  const ids = ["transport/b", "encryption/a", "transport/a", "media/z", "encryption/b", "lifecycle/x", "media/a"];

  it("parses i/n and refuses anything else", () => {
    assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
    assert.deepEqual(parseShard("1/1"), { index: 1, count: 1 });
    for (const bad of ["0/4", "5/4", "1/0", "1/1001", "2", "2/", "/4", "a/b", "1.5/4", "-1/4"]) assert.throws(() => parseShard(bad), SelectionError, bad);
  });

  it("deals the sorted ids round-robin: the same split in any order, every id exactly once, sizes within one", () => {
    const split = assignShards(ids, 3);
    assert.deepEqual([...split].sort(), [["encryption/a", 1], ["encryption/b", 2], ["lifecycle/x", 3], ["media/a", 1], ["media/z", 2], ["transport/a", 3], ["transport/b", 1]]);
    for (let k = 0; k < 20; k++) {
      const shuffled = [...ids].sort(() => Math.random() - 0.5);
      assert.deepEqual(new Map([...assignShards(shuffled, 3)].sort()), new Map([...split].sort()));
    }
    for (const n of [1, 2, 3, 7, 10]) {
      const sizes = Array.from({ length: n }, (_, i) => [...assignShards(ids, n).values()].filter((s) => s === i + 1).length);
      assert.equal(sizes.reduce((a, b) => a + b, 0), ids.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${n}: ${sizes}`);
    }
  });

  it("narrows what the filters selected; the union of the shards is the unsharded selection", () => {
    const all = ids.map((id) => caseDef(id, id.startsWith("media/") ? ["media"] : ["smoke"]));
    const unsharded = selectCases(all, { tags: ["smoke"] });
    const union: string[] = [];
    for (const index of [1, 2]) {
      const part = selectCases(all, { tags: ["smoke"], shard: { index, count: 2 } });
      assert.deepEqual(part.filters, unsharded.filters);
      assert.deepEqual(part.shard, { index, count: 2 });
      assert.equal(part.selected.length + part.skipped.length, all.length);
      union.push(...part.selected.map((c) => c.id));
      const media = part.skipped.filter((s) => s.case.id.startsWith("media/"));
      assert.ok(media.every((s) => s.reason === "filtered out by --tag smoke"));
    }
    assert.deepEqual(union.sort(), unsharded.selected.map((c) => c.id).sort());
    assert.equal(unsharded.shard, undefined);
  });

  it("a selection that runs nothing is a SelectionError: an unknown tag (with the known ones), filters that match no case", () => {
    const all = ids.map((id) => caseDef(id, id.startsWith("media/") ? ["media"] : ["smoke"]));
    const refused = (selection: Parameters<typeof selectCases>[1], pattern: RegExp) =>
      assert.throws(() => selectCases(all, selection), (e: unknown) => e instanceof SelectionError && pattern.test(e.message), JSON.stringify(selection));
    refused({ tags: ["smok"] }, /^--tag smok: no such tag \(did you mean smoke\?\); the tags are: smoke, handshake, .*negative$/);
    refused({ tags: ["smoke", "nonsense-tag"] }, /^--tag nonsense-tag: no such tag; the tags are: /);
    // A known tag no case carries, a --grep without a match, filters whose intersection is empty.
    refused({ tags: ["ratchet"] }, /^no case matches --tag ratchet \(of the 7 case\(s\) of the catalogue; see chatconform list\): nothing would run$/);
    refused({ grep: "no-such-thing" }, /^no case matches --grep no-such-thing /);
    refused({ cases: ["media/"], tags: ["smoke"] }, /^no case matches --case media\/ --tag smoke /);
    assert.throws(() => selectCases([], {}), /the catalogue has no case/);
    assert.equal(selectCases(all, { tags: ["media", "ratchet"] }).selected.length, 2, "one known tag that matches is enough");
  });

  it("a shard the split leaves empty (more shards than selected cases) is a SelectionError; the others run", () => {
    const all = ids.map((id) => caseDef(id, id.startsWith("media/") ? ["media"] : ["smoke"]));
    assert.deepEqual(selectCases(all, { tags: ["media"], shard: { index: 2, count: 3 } }).selected.map((c) => c.id), ["media/z"]);
    assert.throws(() => selectCases(all, { tags: ["media"], shard: { index: 3, count: 3 } }), (e: unknown) =>
      e instanceof SelectionError && e.message === "--shard 3/3: --tag media selects only 2 case(s), so a split into 3 leaves shard 3 without any: use at most 2 shard(s)");
    assert.throws(() => selectCases(all, { shard: { index: 8, count: 8 } }), /^Error: --shard 8\/8: the catalogue has only 7 case\(s\)/);
  });
});

interface Row { id: string; level: Level; status: AggregateStatus; cases: string[] }

function view(id: string, status: CaseStatus, failures: string[] = [], reason?: string, checked: string[] = []): CaseView {
  const checks = [...failures.map((requirement) => ({ requirement, ok: false })), ...checked.map((requirement) => ({ requirement, ok: true }))];
  return { id, status, failures: failures.map((requirement) => ({ requirement })), checks, ...(reason ? { reason } : {}) };
}

function list(entries: Record<string, { reason?: string; until?: string }>): ExpectationList {
  return normaliseExpectations({ format: 1, expected: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, { reason: "known", ...v }])) }, {
    source: "known.yaml",
    caseIds: ["a/one", "a/two", "a/three", "a/four", "a/five"],
    requirementIds: ["AAA-01", "AAA-02", "AAA-03", "BBB-01"],
  });
}

describe("known failures: evaluation and exit code", () => {
  // a/one fails on AAA-01 (AAA-02 then not-tested); a/two passes AAA-03; a/three errors on BBB-01; a/four skipped (AAA-03).
  const cases = [view("a/one", "fail", ["AAA-01"]), view("a/two", "pass", [], undefined, ["AAA-03"]), view("a/three", "error", [], "socket closed"), view("a/four", "skip", [], "filtered out")];
  const requirements: Row[] = [
    { id: "AAA-01", level: "MUST", status: "fail", cases: ["a/one"] },
    { id: "AAA-02", level: "MUST", status: "not-tested", cases: ["a/one"] },
    { id: "AAA-03", level: "MUST", status: "pass", cases: ["a/two", "a/four"] },
    { id: "BBB-01", level: "MUST", status: "error", cases: ["a/three"] },
  ];
  const startedAt = "2026-06-15T10:00:00.000Z";
  const evaluate = (l: ExpectationList, rows = requirements, cs = cases) => evaluateExpectations(l, { cases: cs, requirements: rows, startedAt });

  it("a listed failing case excuses the requirement it failed and the ones it left not-tested; error is never excused", () => {
    const record = evaluate(list({ "a/one": {}, "a/three": {} }));
    assert.deepEqual(record.entries.map((e) => e.outcome), ["expected-and-failed", "unmatched"]);
    assert.match(record.entries[1]!.detail, /neither failed nor passed \(error: socket closed\)/);
    assert.deepEqual(record.excused, ["AAA-01", "AAA-02"]);
    // BBB-01 is still error: incomplete, exit 2.
    assert.equal(exitCodeWithExpectations({ requirements, incomplete: false, expectations: record }), 2);
    const withoutError = requirements.filter((r) => r.id !== "BBB-01");
    assert.equal(exitCodeWithExpectations({ requirements: withoutError, incomplete: false, expectations: evaluate(list({ "a/one": {} }), withoutError) }), 0);
    assert.equal(exitCodeWithExpectations({ requirements: withoutError, incomplete: false }), 1, "without the list: non-compliant");
  });

  it("an excused case does not excuse what a passing case beside it listed but never checked", () => {
    // AAA-02 is also covered by a/five, which passed without a check on it: nothing tested AAA-02.
    const rows = requirements.filter((r) => r.id !== "BBB-01").map((r) => (r.id === "AAA-02" ? { ...r, cases: ["a/one", "a/five"] } : r));
    const cs = [...cases, view("a/five", "pass", [], undefined, ["AAA-03"])];
    const record = evaluate(list({ "a/one": {} }), rows, cs);
    assert.deepEqual(record.excused, ["AAA-01"]);
    assert.equal(exitCodeWithExpectations({ requirements: rows, incomplete: false, expectations: record }), 2, "AAA-02 stays not-tested: incomplete");
    // Once a/five checks it, the row is excused with a/one.
    const checked = [...cases, view("a/five", "pass", [], undefined, ["AAA-02"])];
    assert.deepEqual(evaluate(list({ "a/one": {} }), rows, checked).excused, ["AAA-01", "AAA-02"]);
  });

  it("a listed requirement excuses its failure; a requirement that passed in only some of its cases is unmatched, not stale", () => {
    const rows = requirements.filter((r) => r.id !== "BBB-01");
    const record = evaluate(list({ "AAA-01": {}, "AAA-03": {} }), rows);
    assert.deepEqual(record.entries.map((e) => e.outcome), ["expected-and-failed", "unmatched"]);
    assert.match(record.entries[1]!.detail, /passed in the 1 of its 2 cases that ran/);
    // a/one failed only on a listed requirement, so AAA-02 (not-tested because of it) is excused too.
    assert.deepEqual(record.excused, ["AAA-01", "AAA-02"]);
    assert.equal(exitCodeWithExpectations({ requirements: rows, incomplete: false, expectations: record }), 0);
    const allRan = rows.map((r) => (r.id === "AAA-03" ? { ...r, cases: ["a/two"] } : r));
    assert.equal(evaluate(list({ "AAA-03": {} }), allRan).entries[0]!.outcome, "unexpectedly-passed");
  });

  it("precedence: a stale entry gives exit 1 over everything; an expired entry excuses nothing", () => {
    const stale = evaluate(list({ "a/one": {}, "a/two": {} }));
    assert.equal(stale.entries[1]!.outcome, "unexpectedly-passed");
    assert.equal(stale.entries[1]!.detail, "passed: remove it from the list");
    assert.equal(exitCodeWithExpectations({ requirements, incomplete: true, expectations: stale }), 1, "stale beats incomplete");
    const rows = requirements.filter((r) => r.id !== "BBB-01");
    const expired = evaluate(list({ "a/one": { until: "2026-06-14" } }), rows);
    assert.equal(expired.entries[0]!.outcome, "expired");
    assert.equal(expired.entries[0]!.status, "fail");
    assert.deepEqual(expired.excused, []);
    assert.equal(exitCodeWithExpectations({ requirements: rows, incomplete: false, expectations: expired }), 1);
    // `until` is inclusive: the day itself still excuses.
    assert.equal(evaluate(list({ "a/one": { until: "2026-06-15" } }), rows).entries[0]!.outcome, "expected-and-failed");
  });

  it("an excused failure does not hide another covering case's error or not-tested: the row is computed again from the rest", () => {
    // AAA-01 fails in a/one (listed); a/three covers it too and errored, a/five covers it and was not tested.
    const cs = [view("a/one", "fail", ["AAA-01"]), view("a/three", "error", [], "socket closed"), view("a/five", "not-tested", [], "no hook:block")];
    const withError: Row[] = [{ id: "AAA-01", level: "MUST", status: "fail", cases: ["a/one", "a/three"] }];
    for (const l of [list({ "a/one": {} }), list({ "AAA-01": {} })]) {
      const record = evaluate(l, withError, cs);
      assert.equal(record.entries[0]!.outcome, "expected-and-failed");
      assert.deepEqual(record.excused, [], "error is never excused");
      assert.equal(statusWithExpectations(withError[0]!, record), "error");
      assert.equal(exitCodeWithExpectations({ requirements: withError, incomplete: false, expectations: record }), 2, "incomplete, not compliant");
    }
    const withNotTested: Row[] = [{ id: "AAA-01", level: "MUST", status: "fail", cases: ["a/one", "a/five"] }];
    const notTested = evaluate(list({ "a/one": {} }), withNotTested, cs);
    assert.deepEqual(notTested.excused, []);
    assert.equal(statusWithExpectations(withNotTested[0]!, notTested), "not-tested");
    assert.equal(exitCodeWithExpectations({ requirements: withNotTested, incomplete: false, expectations: notTested }), 2);
    // A listed requirement whose failure is in a case that then errored: the failure is known, the error is not.
    const erroredAfter = [view("a/one", "error", ["AAA-01"], "socket closed after the failure")];
    const listedButErrored = evaluate(list({ "AAA-01": {} }), [{ id: "AAA-01", level: "MUST", status: "fail", cases: ["a/one"] }], erroredAfter);
    assert.deepEqual(listedButErrored.excused, []);
    assert.equal(exitCodeWithExpectations({ requirements: [{ id: "AAA-01", level: "MUST", status: "fail" }], incomplete: false, expectations: listedButErrored }), 2);
    // A listed requirement that is not-tested for another reason (no passing check, a missing hook) is not excused.
    const unchecked = evaluate(list({ "AAA-01": {} }), [{ id: "AAA-01", level: "MUST", status: "not-tested", cases: ["a/two"] }], [view("a/two", "pass")]);
    assert.deepEqual(unchecked.excused, []);
    assert.equal(exitCodeWithExpectations({ requirements: [{ id: "AAA-01", level: "MUST", status: "not-tested" }], incomplete: false, expectations: unchecked }), 2);
    // A covering case that passed (with a check on it) does not stand in the way: only then is the row excused.
    const withPass: Row[] = [{ id: "AAA-01", level: "MUST", status: "fail", cases: ["a/one", "a/two"] }];
    const passed = evaluate(list({ "a/one": {} }), withPass, [...cs, view("a/two", "pass", [], undefined, ["AAA-01"])]);
    assert.deepEqual(passed.excused, ["AAA-01"]);
    assert.equal(exitCodeWithExpectations({ requirements: withPass, incomplete: false, expectations: passed }), 0);
    // A record read back from a file (no residual statuses beside it) is only ever stricter: fail stays fail.
    const fromFile = structuredClone(evaluate(list({ "a/one": {} }), withError, cs));
    assert.equal(exitCodeWithExpectations({ requirements: withError, incomplete: false, expectations: fromFile }), 1);
  });

  it("the list's shape, ids and dates are checked, every problem at once", () => {
    assert.throws(() => normaliseExpectations({ expected: { "a/nine": {}, "ZZZ-01": { reason: 1 } }, extra: true }, { source: "k.yaml", caseIds: [], requirementIds: [] }), (e: unknown) => {
      assert.ok(e instanceof ExpectationsError);
      assert.deepEqual(e.problems.sort(), [
        "(file): unknown key \"extra\"",
        "expected.ZZZ-01.reason: must be string",
        "expected.ZZZ-01: no requirement has this id (see chatconform requirements)",
        "expected.a/nine.reason: required",
        "expected.a/nine: no case has this id (see chatconform list)",
        "format: required",
      ]);
      return true;
    });
    assert.deepEqual(normaliseExpectations({ format: 1, expected: {} }, { source: "k.yaml", caseIds: [], requirementIds: [] }).entries, []);
  });
});

/** A small valid report: one MUST requirement covered by one passing case. */
function miniDoc(): ReportDocument {
  return {
    format: 1, suite: { name: "chatconform", version: "0.1.0" }, profile: { id: "TPC", version: "1" },
    run: { command: "", node: "v20", platform: "linux-x64", caseSetSha256: "a".repeat(64), selection: { total: 1, selected: 1, filters: [] }, policy: "eea", endpointDescription: "x" },
    endpoint: "xmpp://x:5222", startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:00:01Z", incomplete: false, verdict: "compliant",
    summary: { total: 1, pass: 1, fail: 0, error: 0, notTested: 0, skip: 0 },
    requirements: [{ id: "AAA-01", level: "MUST", text: "t", source: "s", status: "pass", cases: ["a/one"] }], uncovered: [],
    cases: [{ id: "a/one", title: "t", file: "f", area: "a", requirements: ["AAA-01"], level: "MUST", tags: [], status: "pass", durationMs: 1, timeoutWaitMs: 0, sha256: "a".repeat(64), checks: [], failures: [], transcript: [] }],
    } as ReportDocument;
}

describe("merge and diff on documents", () => {
  it("mergeReports refuses an empty list; diffReports of a report with itself changes nothing", () => {
    assert.throws(() => mergeReports([], { command: "chatconform merge" }), MergeError);
    const doc = miniDoc();
    assert.deepEqual(validateReport(doc), [], "a report without the new keys is still valid");
    const d = diffReports("a", doc, "b", doc);
    assert.deepEqual({ ...d.unchanged, regression: d.regression, changes: d.regressed.length + d.fixed.length + d.changed.length + d.added.length + d.removed.length }, { cases: 1, requirements: 1, regression: false, changes: 0 });
    const merged = mergeReports([{ file: "a", doc }], { command: "chatconform merge a" }).doc;
    assert.deepEqual(validateReport(merged), []);
    assert.deepEqual(statuses(merged), statuses(doc));
  });
});

/** miniDoc with requirements AAA-01…AAA-05 (levels as given), each covered by one case a/1…a/5. */
function coverageDoc(levels: Level[], status: (k: number) => CaseStatus = () => "pass"): ReportDocument {
  const doc = miniDoc();
  const base = doc.cases[0]!;
  doc.cases = levels.map((level, k) => ({ ...structuredClone(base), id: `a/${k + 1}`, requirements: [`AAA-0${k + 1}`], level, status: status(k + 1) }));
  doc.requirements = levels.map((level, k) => ({ id: `AAA-0${k + 1}`, level, text: "t", source: "s", status: status(k + 1), cases: [`a/${k + 1}`] }));
  doc.summary = summarize(doc.cases);
  return doc;
}

function captured() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l = "") => out.push(l), err: (l = "") => err.push(l) } };
}

describe("diff: lost coverage and a different context", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-diff-"));
  const write = (name: string, doc: ReportDocument) => {
    assert.deepEqual(validateReport(doc), [], name);
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(doc, null, 2));
    return file;
  };
  const levels: Level[] = ["MUST", "SHOULD", "MUST", "MAY", "MUST"];

  it("what passed and is now skip, not-tested, uncovered or missing is a regression (coverage lost), whatever the level", () => {
    const old = coverageDoc(levels);
    const now = coverageDoc(levels, (k) => (k === 1 ? "skip" : k === 2 ? "not-tested" : "pass"));
    // AAA-03 has lost its only case (uncovered); AAA-04 is gone from the profile and a/5 from the catalogue.
    now.cases = now.cases.filter((c) => c.id !== "a/3" && c.id !== "a/5");
    now.requirements = now.requirements.filter((r) => r.id !== "AAA-04").map((r) => (r.id === "AAA-03" ? { ...r, status: "uncovered" as const, cases: [] } : r));
    now.uncovered = ["AAA-03"];
    now.summary = summarize(now.cases);
    const d = diffReports("old", old, "new", now);
    assert.equal(d.regression, true);
    assert.deepEqual(d.regressed.map((c) => `${c.kind} ${c.id} ${c.old}→${c.new}${c.coverageLost ? " lost" : ""}`), [
      "requirement AAA-01 pass→skip lost",
      "requirement AAA-02 pass→not-tested lost",
      "requirement AAA-03 pass→uncovered lost",
      "requirement AAA-04 pass→missing lost",
      "case a/1 pass→skip lost",
      "case a/2 pass→not-tested lost",
      "case a/3 pass→missing lost",
      "case a/5 pass→missing lost",
    ]);
    assert.deepEqual(d.removed.map((p) => p.id), ["AAA-04", "a/3", "a/5"], "what is gone is listed under Removed too");
    assert.deepEqual(d.mismatches, [], "the same endpoint, policy and suite: comparable");
    const text = formatDiff(d);
    assert.ok(text.includes("  requirement AAA-02  SHOULD  pass → not-tested  (coverage lost)"), text.join("\n"));
    assert.match(text.at(-1)!, /^REGRESSION: 4 case\(s\) and 4 requirement\(s\) passed before and do not now \(8 of them coverage lost: no longer tested\)$/);
    const c = captured();
    assert.equal(diffCommand(write("full", old), write("less", now), {}, c.io), 1, "losing coverage fails the diff");
    // A fail is still a regression without "coverage lost"; the reverse direction is no regression.
    const failing = coverageDoc(levels, (k) => (k === 5 ? "fail" : "pass"));
    const f = diffReports("old", old, "new", failing);
    assert.deepEqual(f.regressed.map((x) => [x.id, x.new, x.coverageLost]), [["AAA-05", "fail", undefined], ["a/5", "fail", undefined]]);
    assert.equal(diffCommand(write("less2", now), write("full2", old), {}, captured().io), 0);
  });

  it("another endpoint, policy, suite or a changed case file is refused (exit 3) unless --allow-different-context", () => {
    const old = coverageDoc(levels);
    const other = coverageDoc(levels);
    other.endpoint = "xmpp://other.example:5222";
    other.run.endpointDescription = "config other.yaml";
    other.run.policy = "whatsapp-european-region";
    other.suite.version = "0.2.0";
    other.cases[1]!.sha256 = "b".repeat(64);
    const files = [write("context-old", old), write("context-other", other)] as const;
    const refused = captured();
    assert.equal(diffCommand(files[0], files[1], {}, refused.io), 3);
    assert.deepEqual(refused.out, [], "no diff is printed");
    assert.equal(refused.err[0], `chatconform diff: ${files[0]} and ${files[1]} are not comparable; they differ in:`);
    assert.deepEqual(refused.err.slice(1, -1), [
      "  suite: chatconform 0.1.0 → chatconform 0.2.0",
      "  changed case file(s) (sha256): a/2",
      "  endpoint: xmpp://x:5222 → xmpp://other.example:5222",
      "  policy: eea → whatsapp-european-region",
    ]);
    assert.match(refused.err.at(-1)!, /pass --allow-different-context to diff them anyway/);
    assert.equal(diffCommand(files[0], files[1], { json: true }, captured().io), 3, "--json too");
    // Allowed: the diff is printed, with the context named, and exits on regressions only.
    const allowed = captured();
    assert.equal(diffCommand(files[0], files[1], { allowDifferentContext: true }, allowed.io), 0);
    assert.ok(allowed.out.some((l) => l.startsWith("note: compared across a different context (--allow-different-context): suite: ")), allowed.out.join("\n"));
    const json = captured();
    assert.equal(diffCommand(files[0], files[1], { json: true, allowDifferentContext: true }, json.io), 0);
    assert.equal((JSON.parse(json.out.join("\n")) as ReportDiff).mismatches.length, 4);
    // A mutant of the built-in partner, or another selection, is only a note: it is what a diff is for.
    const mutant = coverageDoc(levels);
    mutant.run.mutant = "plaintext-accepted";
    assert.deepEqual(diffReports("a", old, "b", mutant).mismatches, []);
    assert.deepEqual(diffReports("a", old, "b", mutant).context, ["mutant: none → plaintext-accepted"]);
  });
});
