// The Lua classifier of the Prosody policy module (src/partner/prosody/lua/tpc_eligibility.lua, run
// on Prosody's own Lua) against the TypeScript classifier it is generated from: the same region,
// decision, E.164 form and reason for the numbers of the eligibility cases, of
// test/eligibility.test.ts, of territories.yaml, of libphonenumber's examples and for a seeded
// spread of random numbers under every calling code, under both policies and every eligibility
// fault of the partner.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import metadataJson from "libphonenumber-js/metadata.max.json";
import examples from "libphonenumber-js/examples.mobile.json";
import { getCountries, getExampleNumber } from "libphonenumber-js/max";
import type { CountryCode } from "libphonenumber-js/max";
import { POLICIES, classifyNumber, listRules } from "../src/eligibility/classify.ts";
import type { PolicyName } from "../src/eligibility/classify.ts";
import { partnerClassifier } from "../src/partner/eligibility-faults.ts";
import { classifyTotal } from "../src/partner/server/register.ts";
import { ELIGIBILITY_FAULT_MODES, eligibilityDataLua, sampledRegionDecisions, templateRegionDecision } from "../src/partner/prosody/eligibility-data.ts";
import { findProsody, prosodySkipReason } from "../src/partner/prosody/availability.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "src/partner/prosody/lua/classify-cli.lua");

/** Every double-quoted string literal of a source file (test titles too: anything is a fine input). */
function stringLiterals(file: string): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, "utf8").matchAll(/"((?:[^"\\\n]|\\.)*)"/g)) {
    try {
      out.push(JSON.parse(`"${m[1]}"`) as string);
    } catch {
      // not a JSON-compatible literal
    }
  }
  return out;
}

/** The numbers of the eligibility cases: register phones, number changes, actor phones. */
function caseNumbers(): string[] {
  const out: string[] = [];
  const walk = (value: unknown, key?: string) => {
    if (typeof value === "string" && key && ["phone", "number"].includes(key)) out.push(value);
    else if (Array.isArray(value)) value.forEach((v) => walk(v));
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  for (const dir of readdirSync(path.join(ROOT, "cases"))) {
    for (const file of readdirSync(path.join(ROOT, "cases", dir))) {
      if (file.endsWith(".yaml")) walk(parseYaml(readFileSync(path.join(ROOT, "cases", dir, file), "utf8")));
    }
  }
  // Actor phone patterns fill "#" with digits: try a few fillings.
  return out.flatMap((n) => (n.includes("#") ? ["0", "5", "9"].map((d) => n.replace(/#/g, d)) : [n]));
}

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzNumbers(): string[] {
  const random = seeded(20251);
  const digits = (n: number) => Array.from({ length: n }, () => String(Math.floor(random() * 10))).join("");
  const raw = metadataJson as unknown as { country_calling_codes: Record<string, string[]>; nonGeographic?: Record<string, unknown> };
  const codes = [...Object.keys(raw.country_calling_codes), ...Object.keys(raw.nonGeographic ?? {})];
  const out: string[] = [];
  for (const cc of codes) {
    for (let i = 0; i < 12; i++) out.push(`+${cc}${digits(1 + Math.floor(random() * (15 - cc.length)))}`);
  }
  for (const region of getCountries()) {
    const example = getExampleNumber(region as CountryCode, examples as never);
    if (!example) continue;
    const e164 = example.number;
    out.push(e164, `00${e164.slice(1)}`, example.formatInternational(), example.formatNational(), `${e164}9`, e164.slice(0, -1));
    // the example with its last digits changed: often another range of the same plan
    out.push(`${e164.slice(0, -3)}${digits(3)}`, `${e164.slice(0, -5)}${digits(5)}`);
  }
  out.push(
    "", " ", "+", "++49 30 123456", "+49+30123456", "(0)", "+0 123 456", "+1", "+12", "+123", "+1234", "0049", "00",
    "+49\u00a030\u2007123\u202f4567", "\u3000+49 30 1234567\u3000", "+49\u200b30 1234567", "＋４９ ３０ １２３４５６７", "+٤٩ ٣٠ ١٢٣٤٥٦٧",
    "+49 30 1234567 é", "📞 +49 30 1234567", "+49 30 1234567 #12", "+49 30 1234567;ext=1", "+49.30.123.4567", "+49 [30] 1234567",
    "+49 30 12345678901234567890", "1".repeat(70), "+1234567890123456", "+4930" + "-".repeat(70) + "1", "0 30 1234567", "30 1234567",
    "+44 20 7946 0958", "+44 7911 123456", "+44 1481 256789", "+44 1534 456789", "+44 1624 456789", "+39 06 698 12345", "+39 06 69812345",
    "+379 1234", "+379 12345678901234", "+379 12", "+90 392 123 4567", "+41 91 649 12 34", "+590 690 00 12 34", "+7 700 123 4567", "+7 912 345 67 89",
    "+54 9 11 1234 5678", "+54 11 1234 5678", "+52 1 55 1234 5678", "+55 11 91234 5678", "+61 8 9164 1234", "+61 8 9162 1234", "+212 528 123456",
    "+800 1234 5678", "+882 1234 5678", "+870 123 456 789", "+358 18 123456", "+358 40 123 4567", "+47 79 12 34 56", "+47 412 34 567",
  );
  return out;
}

function allInputs(): string[] {
  const rules = listRules().flatMap((r) => r.examples);
  const inputs = [...caseNumbers(), ...stringLiterals(path.join(ROOT, "test/eligibility.test.ts")), ...rules, ...fuzzNumbers()];
  // The driver reads one input per line, with \n and \t written as escapes.
  return [...new Set(inputs)].filter((s) => !s.includes("\\") && !s.includes("\r"));
}

interface LuaResult { region: string; eligible: boolean; e164: string | null; rule: string; kind: string; reason: string }

function runLua(lua: string, dataFile: string, inputs: string[]): LuaResult[] {
  const stdin = inputs.map((s) => s.replace(/\n/g, "\\n").replace(/\t/g, "\\t")).join("\n") + "\n";
  const result = spawnSync(lua, [CLI, dataFile], { input: stdin, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `lua failed: ${result.stderr}`);
  const lines = result.stdout.split("\n").slice(0, -1);
  assert.equal(lines.length, inputs.length, "one answer per number");
  return lines.map((line) => {
    const [region, eligible, e164, rule, kind, reason] = line.split("\t") as [string, string, string, string, string, string];
    return { region, eligible: eligible === "true", e164: e164 || null, rule, kind, reason };
  });
}

const skipReason = prosodySkipReason();
const suite = skipReason ? describe.skip : describe;

suite(`Prosody policy: the Lua classifier agrees with the TypeScript one${skipReason ? ` (skipped: ${skipReason})` : ""}`, function () {
  this.timeout(120_000);
  let dir: string;
  let lua: string;
  let inputs: string[];

  before(function () {
    const found = findProsody().lua;
    if (!found) this.skip();
    lua = found!;
    dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-lua-eligibility-"));
    inputs = allInputs();
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const policy of POLICIES) {
    it(`real classifier, policy ${policy}: region, decision, E.164, rule, kind and reason of every number`, () => {
      const file = path.join(dir, `real-${policy}.lua`);
      writeFileSync(file, eligibilityDataLua(policy, "real"));
      const got = runLua(lua, file, inputs);
      const mismatches: string[] = [];
      inputs.forEach((input, i) => {
        const ts = classifyNumber(input, policy);
        const total = classifyTotal((p) => classifyNumber(p, policy), input);
        const l = got[i]!;
        const want = { region: total.region, eligible: total.eligible, e164: total.e164, rule: ts.ruleId, kind: ts.unparsable ?? "", reason: ts.reason };
        const have = { region: l.region, eligible: l.eligible, e164: l.e164, rule: l.rule, kind: l.kind, reason: l.reason };
        if (JSON.stringify(want) !== JSON.stringify(have)) mismatches.push(`${JSON.stringify(input)}\n    ts:  ${JSON.stringify(want)}\n    lua: ${JSON.stringify(have)}`);
      });
      assert.equal(mismatches.length, 0, `${mismatches.length} of ${inputs.length} differ:\n  ${mismatches.slice(0, 15).join("\n  ")}`);
    });
  }

  for (const [fault, { mode, policy: forced }] of Object.entries(ELIGIBILITY_FAULT_MODES)) {
    for (const policy of POLICIES) {
      it(`fault ${fault}, policy ${policy}: the same decisions as the in-process partner's classifier`, () => {
        const file = path.join(dir, `${fault}-${policy}.lua`);
        writeFileSync(file, eligibilityDataLua(forced ?? policy, mode ?? "real"));
        const got = runLua(lua, file, inputs);
        const ts = partnerClassifier(policy, new Set([fault]));
        const mismatches: string[] = [];
        inputs.forEach((input, i) => {
          const total = classifyTotal(ts, input);
          const l = got[i]!;
          const want = { region: total.region, eligible: total.eligible, e164: total.e164, reason: total.reason };
          const have = { region: l.region, eligible: l.eligible, e164: l.e164, reason: l.reason };
          if (JSON.stringify(want) !== JSON.stringify(have)) mismatches.push(`${JSON.stringify(input)}\n    ts:  ${JSON.stringify(want)}\n    lua: ${JSON.stringify(have)}`);
        });
        assert.equal(mismatches.length, 0, `${mismatches.length} of ${inputs.length} differ:\n  ${mismatches.slice(0, 15).join("\n  ")}`);
      });
    }
  }
});

describe("Prosody policy: eligibility data generation", () => {
  it("words the decisions of regions without an example exactly as classify.ts does for those with one", () => {
    for (const policy of POLICIES as PolicyName[]) {
      for (const [region, decided] of sampledRegionDecisions(policy)) {
        assert.deepEqual(templateRegionDecision(policy, region), decided, `${policy} ${region}`);
      }
    }
  });
});
