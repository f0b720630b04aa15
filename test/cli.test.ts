// The CLI as a user runs it: a child process, its exit code, what it prints, what it writes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { validateReport } from "../src/report/json.ts";
import { writeTempCase } from "./temp-case.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = path.join(root, "bin", "chatconform.js");

function cli(args: string[], cwd = root) {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("chatconform CLI", function () {
  this.timeout(150_000);

  it("lint accepts the catalogue and rejects a bad file with file:line and exit 3", () => {
    assert.equal(cli(["lint"]).code, 0);
    const { file } = writeTempCase("encryption", "broken", "format: 1\nid: encryption/broken\ntitle: Broken case used by the CLI test\nrequirements: [ENC-06]\nlevel: MUST\ntags: [smoke]\nspec: nothing at all here\nsteps:\n  - fly: { to: moon }\n");
    const result = cli(["lint", file]);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /broken\.yaml:9: steps\.0: is not a known step/);
  });

  it("requirements --json lists every requirement with its covering cases", () => {
    const result = cli(["requirements", "--json"]);
    assert.equal(result.code, 0);
    const doc = JSON.parse(result.stdout) as { requirements: { id: string; level: string; cases: string[] }[]; uncovered: string[] };
    const enc06 = doc.requirements.find((r) => r.id === "ENC-06")!;
    assert.ok(enc06.cases.includes("encryption/text-roundtrip"));
    assert.ok(doc.uncovered.every((id) => doc.requirements.find((r) => r.id === id)!.cases.length === 0));
  });

  it("list --json names each case with its hash", () => {
    const result = cli(["list", "--json"]);
    assert.equal(result.code, 0);
    const list = JSON.parse(result.stdout) as { id: string; sha256: string }[];
    assert.ok(list.length >= 12);
    assert.ok(list.every((c) => /^[0-9a-f]{64}$/.test(c.sha256)));
  });

  it("a bad config is reported at once as path: message with exit 3", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-cli-"));
    const file = path.join(dir, "endpoint.yaml");
    writeFileSync(file, "domain: partner.example\nhooks: [dance]\naccounts: { mode: teleport }\n");
    const result = cli(["run", "--config", file]);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /hooks\.0: must be one of/);
    assert.match(result.stderr, /accounts\.mode: must be one of register, static/);
  });

  it("usage errors exit 3", () => {
    assert.equal(cli(["run", "--jobs", "0"]).code, 3);
    assert.equal(cli(["run", "--case", "no/such-case"]).code, 3);
    assert.equal(cli(["run", "--partner-mutant", "no-such-mutant"]).code, 3);
  });

  it("run certifies the built-in partner: exit 0, report.json valid, latest points at it", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const result = cli(["run", "--out", out, "--case", "encryption/text-roundtrip,transport/"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /encryption\/text-roundtrip/);
    assert.match(result.stdout, /compliant/);
    const text = readFileSync(path.join(out, "latest", "report.json"), "utf8");
    // Registration passwords and SASL payloads never reach the report.
    assert.doesNotMatch(text, /<password>(?!\[redacted\])/);
    assert.doesNotMatch(text, /<(auth|response)\b[^>]*>(?!\[redacted\])[^<]/);
    const report = JSON.parse(text);
    assert.deepEqual(validateReport(report), []);
    assert.equal(report.verdict, "compliant");
    assert.ok(readdirSync(out).some((d) => /^\d{4}-\d\d-\d\dT/.test(d)));
  });

  it("run against a mutant exits 1 and names the broken requirement", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const result = cli(["run", "--out", out, "--partner-mutant", "plaintext-accepted", "--case", "encryption/plaintext-refused"]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /ENC-14/);
    assert.match(result.stdout, /Expected:/);
    assert.ok(existsSync(path.join(out, "latest", "report.json")));
  });
});

describe("chatconform reporters (CLI)", function () {
  this.timeout(150_000);

  it("an unknown reporter or reporter option is a usage error (exit 3) before anything runs", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const unknown = cli(["run", "--out", out, "--reporter", "console,tap"]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /unknown reporter "tap": use console, json, junit, html, markdown, or a path to a module/);
    const option = cli(["run", "--out", out, "--reporter", "junit:colour=red"]);
    assert.equal(option.code, 3);
    assert.match(option.stderr, /unknown option "colour" for junit/);
    assert.deepEqual(readdirSync(out), [], "no run directory");
  });

  it("run --reporter junit,html,markdown writes every artifact; report render gives the same from report.json", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const result = cli(["run", "--out", out, "--partner-mutant", "plaintext-accepted", "--case", "encryption/plaintext-refused,encryption/text-roundtrip", "--reporter", "junit,html,markdown"]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    // No console reporter: stdout stays empty, the verdict line goes to stderr.
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /^non-compliant — .*report\.json$/m);
    const dir = path.join(out, "latest");
    assert.deepEqual(readdirSync(dir).sort(), ["report.html", "report.json", "report.junit.xml", "report.md"]);

    const junit = readFileSync(path.join(dir, "report.junit.xml"), "utf8");
    assert.match(junit, /<property name="verdict" value="non-compliant"\/>/);
    assert.match(junit, /<testcase name="encryption\/plaintext-refused" classname="encryption" time="[\d.]+" file="cases\/encryption\/plaintext-refused\.yaml">\s*<failure message="ENC-14: expected /);
    assert.match(readFileSync(path.join(dir, "report.md"), "utf8"), /^## ❌ TPC\/1 conformance: \*\*non-compliant\*\*[\s\S]*\| \*\*ENC-14\*\* \| MUST \| `encryption\/plaintext-refused` \| expected /);
    const html = readFileSync(path.join(dir, "report.html"), "utf8");
    assert.match(html, /data-verdict="non-compliant"/);
    assert.doesNotMatch(html, /<password>(?!\[redacted\])/);

    // Through a pipe: nothing may be lost when the process exits right after writing.
    assert.equal(cli(["report", "render", path.join(dir, "report.json"), "--format", "html"]).stdout, html);
    const htmlAgain = path.join(out, "again.html");
    const rendered = cli(["report", "render", path.join(dir, "report.json"), "--format", "html", "--output", htmlAgain]);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.equal(readFileSync(htmlAgain, "utf8"), html);
    const markdown = cli(["report", "render", path.join(dir, "report.json"), "--format", "markdown"]);
    assert.equal(markdown.stdout, readFileSync(path.join(dir, "report.md"), "utf8").replace(/\n\nFull report: .*\n$/, "\n"));
    const junitAgain = path.join(out, "again.xml");
    assert.equal(cli(["report", "render", path.join(dir, "report.json"), "--format", "junit", "--output", junitAgain]).code, 0);
    assert.equal(readFileSync(junitAgain, "utf8"), junit);
    const bad = cli(["report", "render", path.join(dir, "report.json"), "--format", "pdf"]);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /unknown format "pdf"/);
    assert.equal(cli(["report", "render", path.join(out, "missing.json"), "--format", "html"]).code, 3);
    assert.equal(cli(["report", "render", path.join(dir, "report.json")]).code, 3, "--format is required");
  });
});

describe("chatconform CI commands (CLI)", function () {
  this.timeout(60_000);

  it("diff and merge are commands; misuse of them, --shard and --expect exits 3 (test/ci-features.test.ts has the rest)", () => {
    const help = cli(["--help"]);
    assert.match(help.stdout, /^\s+diff \[options\] <old> <new>/m);
    assert.match(help.stdout, /^\s+merge \[options\] <reports\.\.\.>/m);
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    assert.equal(cli(["run", "--out", out, "--shard", "3/2"]).code, 3);
    assert.equal(cli(["run", "--out", out, "--expect", path.join(out, "no-such-list.yaml")]).code, 3);
    assert.deepEqual(readdirSync(out), [], "no run directory");
    assert.equal(cli(["diff", path.join(out, "only-one.json")]).code, 3);
    assert.equal(cli(["merge"]).code, 3);
  });
});

describe("chatconform run: a selection that runs nothing (CLI)", function () {
  this.timeout(60_000);

  it("an unknown tag, filters that match no case and an empty shard exit 3 with the reason, before anything runs", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const tag = cli(["run", "--out", out, "--tag", "smok"]);
    assert.equal(tag.code, 3, tag.stdout + tag.stderr);
    assert.match(tag.stderr, /^chatconform: --tag smok: no such tag \(did you mean smoke\?\); the tags are: smoke, /m);
    const grep = cli(["run", "--out", out, "--case", "transport/", "--grep", "no-such-case-anywhere"]);
    assert.equal(grep.code, 3, grep.stdout + grep.stderr);
    assert.match(grep.stderr, /^chatconform: no case matches --case transport\/ --grep no-such-case-anywhere \(of the \d+ case\(s\) of the catalogue; see chatconform list\): nothing would run$/m);
    const shard = cli(["run", "--out", out, "--case", "encryption/plaintext-refused", "--shard", "2/2"]);
    assert.equal(shard.code, 3, shard.stdout + shard.stderr);
    assert.match(shard.stderr, /^chatconform: --shard 2\/2: --case encryption\/plaintext-refused selects only 1 case\(s\), so a split into 2 leaves shard 2 without any/m);
    assert.deepEqual(readdirSync(out), [], "no run directory");
  });
});

describe("chatconform run --ca and --insecure (CLI)", function () {
  this.timeout(60_000);

  it("need --config, and an unreadable --ca file is a config problem (exit 3) before anything runs", () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "chatconform-reports-"));
    const alone = cli(["run", "--out", out, "--insecure"]);
    assert.equal(alone.code, 3);
    assert.match(alone.stderr, /--ca and --insecure apply to an endpoint given with --config/);
    const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-cli-"));
    const file = path.join(dir, "endpoint.yaml");
    writeFileSync(file, "endpoint: xmpp://127.0.0.1:5222\ndomain: partner.example\n");
    const missing = cli(["run", "--config", file, "--out", out, "--ca", path.join(dir, "no-such-ca.pem")]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /--ca: cannot read .*no-such-ca\.pem: ENOENT/);
    assert.deepEqual(readdirSync(out), [], "no run directory");
  });
});
