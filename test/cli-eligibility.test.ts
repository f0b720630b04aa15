// `chatconform eligibility` as a user runs it: a child process, its exit code and what it prints.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { eligibilityCommand } from "../src/cli/eligibility.ts";
import type { EligibilityDecision } from "../src/eligibility/classify.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = path.join(root, "bin", "chatconform.js");

function cli(args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The block of lines printed for one input: its first line up to the next blank line. */
function block(stdout: string, input: string): string {
  const found = stdout.split("\n\n").find((b) => b.startsWith(`${input}  →  `));
  assert.ok(found, `no block for ${input} in:\n${stdout}`);
  return found;
}

describe("chatconform eligibility", function () {
  this.timeout(60_000);

  it("prints one block per number with its decision, rule, reason and source, and a policy note", () => {
    const result = cli(["eligibility", "+49 151 12345678", "+47 79 12 34 56", "+358 18 123456"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);

    const de = block(result.stdout, "+49 151 12345678");
    assert.match(de, /^\+49 151 12345678 {2}→ {2}\+4915112345678 {2}DE {2}eligible \(eea\)$/m);
    assert.match(de, /^ {2}rule: country-code-range$/m);
    assert.match(de, /^ {2}reason: Region DE \(Germany\): eligible under policy eea/m);
    assert.match(de, /^ {2}source: TEU Art\. 52/m);

    const sj = block(result.stdout, "+47 79 12 34 56");
    assert.match(sj, /^\+47 79 12 34 56 {2}→ {2}\+4779123456 {2}SJ {2}not eligible \(eea\)$/m);
    assert.match(sj, /^ {2}rule: svalbard-jan-mayen$/m);
    assert.match(sj, /^ {2}reason: .*Svalbard/m);
    assert.match(sj, /^ {2}source: EEA Agreement Protocol 40 \(Svalbard\)$/m);

    const ax = block(result.stdout, "+358 18 123456");
    assert.match(ax, /^\+358 18 123456 {2}→ {2}\+35818123456 {2}AX {2}eligible \(eea\)$/m);
    assert.match(ax, /^ {2}rule: aland$/m);
    assert.match(ax, /^ {2}source: TFEU Art\. 355\(4\)/m);

    assert.match(result.stdout, /\npolicy eea \(European Economic Area\): 2 of 3 numbers eligible\n$/);
    assert.equal(result.stderr, "");
  });

  it("shows an unparsable number with its kind and reason, and still exits 0", () => {
    const result = cli(["eligibility", "+34 612 34 56 7O", "+34 12"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const letters = block(result.stdout, "+34 612 34 56 7O");
    assert.match(letters, /^\+34 612 34 56 7O {2}→ {2}unparsable \(letters\)$/m);
    assert.match(letters, /^ {2}reason: Unparsable number: the number contains letters \("O"\)/m);
    assert.doesNotMatch(letters, /source:/);
    const short = block(result.stdout, "+34 12");
    assert.match(short, /unparsable \(too-short\)/);
    assert.match(short, /reason: Unparsable number: the number is too short for a \+34 number/);
    assert.match(result.stdout, /0 of 2 numbers eligible, 2 unparsable/);
  });

  it("--json prints the policy and the decision objects", () => {
    const result = cli(["eligibility", "--json", "+47 79 12 34 56", "+358 18 123456", "+34 612 34 56 7O"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const doc = JSON.parse(result.stdout) as { policy: string; decisions: EligibilityDecision[] };
    assert.equal(doc.policy, "eea");
    assert.equal(doc.decisions.length, 3);
    const [sj, ax, letters] = doc.decisions;
    assert.deepEqual(
      { input: sj.input, e164: sj.e164, region: sj.region, policy: sj.policy, eligible: sj.eligible, ruleId: sj.ruleId },
      { input: "+47 79 12 34 56", e164: "+4779123456", region: "SJ", policy: "eea", eligible: false, ruleId: "svalbard-jan-mayen" },
    );
    assert.equal(sj.source, "EEA Agreement Protocol 40 (Svalbard)");
    assert.ok(sj.reason.length > 0);
    assert.equal(ax.region, "AX");
    assert.equal(ax.eligible, true);
    assert.equal(ax.ruleId, "aland");
    assert.equal(letters.e164, null);
    assert.equal(letters.region, "ZZ");
    assert.equal(letters.ruleId, "unparsable");
    assert.equal(letters.unparsable, "letters");
    assert.match(letters.reason, /letters/);
  });

  it("--policy whatsapp-european-region makes a Swiss number eligible", () => {
    const eea = cli(["eligibility", "+41 78 123 45 67"]);
    assert.equal(eea.code, 0, eea.stdout + eea.stderr);
    assert.match(eea.stdout, /\+41781234567 {2}CH {2}not eligible \(eea\)/);

    const wer = cli(["eligibility", "+41 78 123 45 67", "--policy", "whatsapp-european-region"]);
    assert.equal(wer.code, 0, wer.stdout + wer.stderr);
    assert.match(wer.stdout, /\+41781234567 {2}CH {2}eligible \(whatsapp-european-region\)/);
    assert.match(wer.stdout, /^ {2}rule: switzerland$/m);
    assert.match(wer.stdout, /policy whatsapp-european-region \(WhatsApp European region\): 1 of 1 number eligible/);

    const json = cli(["eligibility", "--json", "--policy", "whatsapp-european-region", "+41 78 123 45 67"]);
    const doc = JSON.parse(json.stdout) as { policy: string; decisions: EligibilityDecision[] };
    assert.equal(doc.policy, "whatsapp-european-region");
    assert.equal(doc.decisions[0].eligible, true);
  });

  it("an unknown policy exits 3 and names the known policies", () => {
    const result = cli(["eligibility", "--policy", "worldwide", "+41 78 123 45 67"]);
    assert.equal(result.code, 3);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /unknown policy "worldwide"; known policies: eea \(European Economic Area\), whatsapp-european-region \(WhatsApp European region\)/);
  });

  it("no number exits 3 with a usage message", () => {
    const result = cli(["eligibility"]);
    assert.equal(result.code, 3);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /missing required argument 'numbers'/);
  });

  it("called with no numbers (commander normally catches it) it still reports misuse with exit 3", () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const code = eligibilityCommand([], { policy: "eea" }, { out: (l = "") => lines.push(l), err: (l = "") => errors.push(l), color: false });
    assert.equal(code, 3);
    assert.deepEqual(lines, []);
    assert.match(errors.join("\n"), /needs at least one number/);
  });
});
