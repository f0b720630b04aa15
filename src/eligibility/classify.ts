// Eligibility of a gatekeeper number (TPC/1 §9, §10a): input → E.164 → region → policy decision.
// The policies and the territory override rules are data, in territories.yaml next to this file;
// docs/eligibility.md describes the map and how to change it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import { ParseError, isSupportedCountry, parsePhoneNumberWithError, validatePhoneNumberLength } from "libphonenumber-js/max";
import type { PhoneNumber } from "libphonenumber-js/max";
import { parse as parseYaml } from "yaml";

export type PolicyName = "eea" | "whatsapp-european-region";

/** The eligibility policies, default first. */
export const POLICIES: PolicyName[] = ["eea", "whatsapp-european-region"];

/** Rule id of a decision made from libphonenumber's region, with no override rule. */
export const DEFAULT_RULE_ID = "country-code-range";
/** Rule id of a number that did not parse (region "ZZ", never eligible). */
export const UNPARSABLE_RULE_ID = "unparsable";

/** Why a number did not parse; each kind has its own reason text. */
export type UnparsableKind =
  | "empty"
  | "letters"
  | "invalid-characters"
  | "misplaced-plus"
  | "no-international-prefix"
  | "unknown-country-code"
  | "too-short"
  | "too-long"
  | "invalid-length"
  | "invalid-number"
  | "non-geographic";

export interface EligibilityDecision {
  /** The input as given. */
  input: string;
  /** The number in E.164 form, or null when it did not parse. */
  e164: string | null;
  /** ISO 3166 alpha-2 code, or "ZZ" when the number did not parse. */
  region: string;
  policy: PolicyName;
  eligible: boolean;
  /** The override rule's id, "country-code-range" (no override) or "unparsable". */
  ruleId: string;
  /** Plain words, fit for an <ineligible-region/> text. */
  reason: string;
  /** The legal or numbering source of the decision. */
  source?: string;
  /** Only when ruleId is "unparsable": which check failed. */
  unparsable?: UnparsableKind;
}

export interface PolicyDefinition {
  name: PolicyName;
  title: string;
  description: string;
  source: string;
  /** The policy whose regions (and EEA decisions) this one includes. */
  extends?: PolicyName;
  /** The regions this policy adds to the one it extends. */
  regions: string[];
}

export interface TerritoryRule {
  /** Stable identifier; never reused for another territory. */
  id: string;
  territory: string;
  /** One code: the region the rule reports. A list: the regions sharing the ranges, of which
   *  libphonenumber picks one by range (the rule applies only when its pick is in the list). */
  region: string | string[];
  /** E.164 prefixes, e.g. "+4779". The longest matching range wins. */
  ranges: string[];
  /** The rule's decision for the policy "eea" (and the policies extending it), replacing the
   *  membership test of the region. */
  eea?: boolean;
  /** Decisions for named policies; these beat everything else. */
  policies?: Partial<Record<PolicyName, boolean>>;
  /** Only for a calling code libphonenumber has no metadata for (e.g. +379): the number of digits
   *  allowed after the range. Such numbers are classified by the rule alone. */
  digitsAfterRange?: [number, number];
  source: string;
  reason: string;
  /** Valid numbers in the rule's ranges (tests and docs). */
  examples: string[];
}

export interface TerritoryData {
  version: 1;
  policies: Record<PolicyName, Omit<PolicyDefinition, "name">>;
  rules: TerritoryRule[];
}

/** The eligibility data file is missing or broken. */
export class TerritoryDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TerritoryDataError";
  }
}

// ---------------------------------------------------------------------------------------------
// Loading and validating the data

const REGION_CODE = { type: "string", pattern: "^[A-Z]{2}$" } as const;
const POLICY_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["title", "description", "source", "regions"],
  properties: {
    title: { type: "string", minLength: 1 },
    description: { type: "string", minLength: 1 },
    source: { type: "string", minLength: 1 },
    extends: { enum: POLICIES },
    regions: { type: "array", items: REGION_CODE, uniqueItems: true },
  },
} as const;

const DATA_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["version", "policies", "rules"],
  properties: {
    version: { const: 1 },
    policies: {
      type: "object",
      additionalProperties: false,
      required: POLICIES,
      properties: Object.fromEntries(POLICIES.map((p) => [p, POLICY_SCHEMA])),
    },
    rules: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["id", "territory", "region", "ranges", "source", "reason", "examples"],
        properties: {
          id: { type: "string", pattern: "^[a-z0-9]+(-[a-z0-9]+)*$" },
          territory: { type: "string", minLength: 1 },
          region: { oneOf: [REGION_CODE, { type: "array", items: REGION_CODE, minItems: 2, uniqueItems: true }] },
          ranges: { type: "array", minItems: 1, uniqueItems: true, items: { type: "string", pattern: "^\\+[1-9][0-9]{0,13}$" } },
          eea: { type: "boolean" },
          policies: {
            type: "object",
            additionalProperties: false,
            minProperties: 1,
            properties: Object.fromEntries(POLICIES.map((p) => [p, { type: "boolean" }])),
          },
          digitsAfterRange: {
            type: "array",
            minItems: 2,
            maxItems: 2,
            items: { type: "integer", minimum: 1, maximum: 14 },
          },
          source: { type: "string", minLength: 1 },
          reason: { type: "string", minLength: 1 },
          examples: { type: "array", minItems: 1, items: { type: "string", pattern: "^\\+[0-9][0-9 ]*$" } },
        },
      },
    },
  },
} as const;

const validateShape = new Ajv({ allErrors: true }).compile(DATA_SCHEMA);

function describeAjvError(e: ErrorObject): string {
  const at = e.instancePath || "/";
  if (e.keyword === "additionalProperties") return `${at}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  return `${at}: ${e.message ?? "is invalid"}`;
}

/** True when libphonenumber knows no calling code at the start of this E.164 prefix. */
function unknownCallingCode(range: string): boolean {
  try {
    parsePhoneNumberWithError(`${range}1234567`);
    return false;
  } catch (err) {
    return err instanceof ParseError && err.message === "INVALID_COUNTRY";
  }
}

/**
 * Parse and check eligibility data (the text of territories.yaml). Throws TerritoryDataError
 * naming every problem found; `file` only labels the messages.
 */
export function parseTerritoryData(text: string, file = "territories.yaml"): TerritoryData {
  const broken = (problems: string[]): TerritoryDataError =>
    new TerritoryDataError(`eligibility data ${file} is broken:\n  - ${problems.join("\n  - ")}`);
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw broken([`not valid YAML: ${(err as Error).message}`]);
  }
  if (!validateShape(raw)) throw broken((validateShape.errors ?? []).map(describeAjvError));
  const data = raw as unknown as TerritoryData;
  const problems: string[] = [];

  for (const name of POLICIES) {
    const seen = new Set<PolicyName>([name]);
    for (let p = data.policies[name].extends; p !== undefined; p = data.policies[p].extends) {
      if (seen.has(p)) {
        problems.push(`/policies/${name}: "extends" makes a cycle through ${p}`);
        break;
      }
      seen.add(p);
    }
    for (const region of data.policies[name].regions) {
      if (!isSupportedCountry(region)) problems.push(`/policies/${name}/regions: ${region} is not a region libphonenumber knows`);
    }
  }

  const ids = new Set<string>();
  const ranges = new Map<string, string>();
  data.rules.forEach((rule, i) => {
    const at = `/rules/${i} (${rule.id})`;
    if (ids.has(rule.id)) problems.push(`${at}: duplicate id`);
    ids.add(rule.id);
    for (const region of typeof rule.region === "string" ? [rule.region] : rule.region) {
      if (!isSupportedCountry(region)) problems.push(`${at}: region ${region} is not a region libphonenumber knows`);
    }
    for (const range of rule.ranges) {
      const other = ranges.get(range);
      if (other !== undefined) problems.push(`${at}: range ${range} is already in rule ${other}`);
      ranges.set(range, rule.id);
      const unknown = unknownCallingCode(range);
      if (rule.digitsAfterRange === undefined && unknown) {
        problems.push(`${at}: range ${range} starts with a calling code libphonenumber has no metadata for; numbers in it never parse unless the rule gives digitsAfterRange`);
      }
      if (rule.digitsAfterRange !== undefined && !unknown) {
        problems.push(`${at}: digitsAfterRange is only for calling codes libphonenumber has no metadata for, and ${range} has some`);
      }
    }
    if (rule.digitsAfterRange !== undefined) {
      const [min, max] = rule.digitsAfterRange;
      if (min > max) problems.push(`${at}: digitsAfterRange [${min}, ${max}] is empty`);
      if (typeof rule.region !== "string") problems.push(`${at}: a rule with digitsAfterRange must name one region`);
    }
  });
  if (problems.length > 0) throw broken(problems);
  return data;
}

const DATA_URL = new URL("./territories.yaml", import.meta.url);
/** Where the eligibility data is read from. */
export const TERRITORIES_FILE = fileURLToPath(DATA_URL);

function loadTerritoryData(): TerritoryData {
  let text: string;
  try {
    text = readFileSync(DATA_URL, "utf8");
  } catch (err) {
    throw new TerritoryDataError(`eligibility data ${TERRITORIES_FILE} cannot be read: ${(err as Error).message}`);
  }
  return parseTerritoryData(text, TERRITORIES_FILE);
}

const DATA: TerritoryData = loadTerritoryData();

/** Every (range, rule) pair, longest range first, so that the first match is the most specific. */
const RANGE_INDEX: { range: string; rule: TerritoryRule }[] = DATA.rules
  .flatMap((rule) => rule.ranges.map((range) => ({ range, rule })))
  .sort((a, b) => b.range.length - a.range.length);

// ---------------------------------------------------------------------------------------------
// Public helpers

export function isPolicyName(s: unknown): s is PolicyName {
  return typeof s === "string" && (POLICIES as string[]).includes(s);
}

function requirePolicy(policy: unknown): PolicyName {
  if (!isPolicyName(policy)) throw new TypeError(`unknown eligibility policy "${String(policy)}"; known policies: ${POLICIES.join(", ")}`);
  return policy;
}

/** The definition of a policy as the data file gives it. */
export function describePolicy(policy: PolicyName): PolicyDefinition {
  const def = DATA.policies[requirePolicy(policy)];
  return { name: policy, ...structuredClone(def) };
}

/** The override rules, in the data file's order (copies). */
export function listRules(): TerritoryRule[] {
  return structuredClone(DATA.rules);
}

function ruleRegions(rule: TerritoryRule): string[] {
  return typeof rule.region === "string" ? [rule.region] : rule.region;
}

/**
 * Every region a number can be eligible with under the policy, sorted: the policy's regions and
 * those of the policies it extends, plus the territories that rules admit (e.g. AX, GP, RE under
 * eea). A region listed here may still have ranges a rule excludes (e.g. VA's reserved +379).
 */
export function policyRegions(policy: PolicyName): string[] {
  requirePolicy(policy);
  const regions = new Set<string>();
  for (let p: PolicyName | undefined = policy; p !== undefined; p = DATA.policies[p].extends) {
    for (const region of DATA.policies[p].regions) regions.add(region);
  }
  for (const rule of DATA.rules) {
    for (const region of ruleRegions(rule)) if (decide(policy, region, rule).eligible) regions.add(region);
  }
  return [...regions].sort();
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** Separators people write inside phone numbers: white space, dashes, dots, brackets. */
const SEPARATORS = /[\s\u00a0\u2007\u202f\-\u2010-\u2015\u2212.()[\]]/gu;
const MAX_INPUT_LENGTH = 64;
const E164_MAX_DIGITS = 15;

export type NormalisedNumber = { ok: true; e164: string } | { ok: false; kind: UnparsableKind; reason: string };

function listChars(chars: string[]): string {
  return [...new Set(chars)].slice(0, 5).map((c) => JSON.stringify(c)).join(", ");
}

/**
 * The structural part of normalisation: strip separators and the international prefix (+ or 00)
 * and return "+digits". Does not check the number against any numbering plan.
 */
export function normaliseNumber(input: string): NormalisedNumber {
  const fail = (kind: UnparsableKind, reason: string): NormalisedNumber => ({ ok: false, kind, reason });
  const text = typeof input === "string" ? input.trim() : "";
  if (text === "") return fail("empty", "no number was given");
  if (text.length > MAX_INPUT_LENGTH) return fail("too-long", `the input is ${text.length} characters long, longer than any phone number`);
  const letters = text.match(/\p{L}/gu);
  if (letters) {
    return fail("letters", `the number contains letters (${listChars(letters)}); only digits, "+", spaces, dashes, dots and brackets are allowed`);
  }
  const stripped = text.replace(SEPARATORS, "");
  const others = stripped.match(/[^0-9+]/gu);
  if (others) {
    return fail("invalid-characters", `the number contains characters that are not part of a phone number (${listChars(others)})`);
  }
  if (stripped === "") return fail("empty", "the input has separators but no digits");
  if (stripped.lastIndexOf("+") > 0) return fail("misplaced-plus", `"+" may appear only once, at the start of the number`);
  let digits: string;
  if (stripped.startsWith("+")) digits = stripped.slice(1);
  else if (stripped.startsWith("00")) digits = stripped.slice(2);
  else {
    return fail(
      "no-international-prefix",
      stripped.startsWith("0")
        ? "the number is in national form (it starts with a trunk prefix 0); write it with its country code, as +CC or 00CC followed by the number"
        : "the number has no international prefix; write it with its country code, as +CC or 00CC followed by the number",
    );
  }
  if (digits === "") return fail("too-short", "nothing follows the international prefix");
  if (digits.length > E164_MAX_DIGITS) {
    return fail("too-long", `the number has ${digits.length} digits after the international prefix; E.164 numbers have at most ${E164_MAX_DIGITS}`);
  }
  return { ok: true, e164: `+${digits}` };
}

// ---------------------------------------------------------------------------------------------
// Classification

interface Trace {
  eligible: boolean;
  /** rule-policy: the rule decides for this policy; rule-eea: the rule's EEA decision; listed: the
   *  region is in the regions of policy `at`; unlisted: in no policy of the chain. */
  how: "rule-policy" | "rule-eea" | "listed" | "unlisted";
  at: PolicyName;
}

function decide(policy: PolicyName, region: string, rule: TerritoryRule | undefined): Trace {
  const explicit = rule?.policies?.[policy];
  if (explicit !== undefined) return { eligible: explicit, how: "rule-policy", at: policy };
  if (policy === "eea" && rule?.eea !== undefined) return { eligible: rule.eea, how: "rule-eea", at: policy };
  const def = DATA.policies[policy];
  if (def.regions.includes(region)) return { eligible: true, how: "listed", at: policy };
  if (def.extends !== undefined) return decide(def.extends, region, rule);
  return { eligible: false, how: "unlisted", at: policy };
}

const regionNames = new Intl.DisplayNames(["en"], { type: "region", fallback: "code" });

function regionName(region: string): string {
  try {
    return regionNames.of(region) ?? region;
  } catch {
    return region;
  }
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function why(policy: PolicyName, region: string, rule: TerritoryRule | undefined, trace: Trace): string {
  switch (trace.how) {
    case "rule-policy":
      return `rule ${rule!.id} decides it for this policy`;
    case "rule-eea": {
      const eea = `rule ${rule!.id} counts the territory as ${trace.eligible ? "part of" : "outside"} the EEA`;
      if (trace.at === policy) return eea;
      return trace.eligible ? `${eea}, which ${policy} includes` : `${eea}, and ${region} is not one of the regions ${policy} adds`;
    }
    case "listed":
      return trace.at === policy ? `${region} is in its region set` : `${region} is in the ${trace.at} region set, which ${policy} includes`;
    case "unlisted":
      return `${region} is not in its region set: ${DATA.policies[policy].description}`;
  }
}

function decisionFor(input: string, e164: string, region: string, policy: PolicyName, rule: TerritoryRule | undefined): EligibilityDecision {
  const trace = decide(policy, region, rule);
  const verdict = `${trace.eligible ? "eligible" : "not eligible"} under policy ${policy} (${why(policy, region, rule, trace)})`;
  const reason = rule
    ? `${capitalise(rule.reason)}. Region ${region}: ${verdict}.`
    : `Region ${region} (${regionName(region)}): ${verdict}.`;
  return {
    input,
    e164,
    region,
    policy,
    eligible: trace.eligible,
    ruleId: rule ? rule.id : DEFAULT_RULE_ID,
    reason,
    source: rule ? rule.source : DATA.policies[trace.how === "unlisted" ? policy : trace.at].source,
  };
}

function unparsable(input: string, policy: PolicyName, kind: UnparsableKind, reason: string): EligibilityDecision {
  return {
    input,
    e164: null,
    region: "ZZ",
    policy,
    eligible: false,
    ruleId: UNPARSABLE_RULE_ID,
    reason: `Unparsable number: ${reason}.`,
    unparsable: kind,
  };
}

const LENGTH_FAILURES: Record<string, [UnparsableKind, (cc: string, e164: string) => string]> = {
  TOO_SHORT: ["too-short", (cc) => (cc ? `the number is too short for a +${cc} number` : "the number is too short to hold a country code and a subscriber number")],
  TOO_LONG: ["too-long", (cc) => (cc ? `the number is too long for a +${cc} number` : "the number is too long")],
  INVALID_LENGTH: ["invalid-length", (cc, e164) => `+${cc} numbers never have ${e164.length - 1 - cc.length} digits after the country code`],
  NOT_A_NUMBER: ["invalid-number", () => `it is not a phone number`],
  INVALID_COUNTRY: [
    "unknown-country-code",
    (_cc, e164) => `${e164} does not start with an assigned country calling code${e164.startsWith("+0") ? " (calling codes never start with 0)" : ""}`,
  ],
};

/**
 * Classify a gatekeeper number under an eligibility policy. Never throws for any input string
 * (an unknown policy name is a programming error and throws TypeError).
 */
export function classifyNumber(input: string, policy: PolicyName = "eea"): EligibilityDecision {
  requirePolicy(policy);
  const normalised = normaliseNumber(input);
  if (!normalised.ok) return unparsable(input, policy, normalised.kind, normalised.reason);
  const { e164 } = normalised;

  // Ranges of calling codes libphonenumber has no metadata for (+379): the rule alone decides.
  const bare = RANGE_INDEX.find((r) => r.rule.digitsAfterRange !== undefined && e164.startsWith(r.range));
  if (bare) {
    const [min, max] = bare.rule.digitsAfterRange!;
    const after = e164.length - bare.range.length;
    if (after < min) return unparsable(input, policy, "too-short", `the number is too short: ${bare.range} numbers have ${min} to ${max} digits after ${bare.range}`);
    if (after > max) return unparsable(input, policy, "too-long", `the number is too long: ${bare.range} numbers have ${min} to ${max} digits after ${bare.range}`);
    return decisionFor(input, e164, bare.rule.region as string, policy, bare.rule);
  }

  let phone: PhoneNumber;
  try {
    phone = parsePhoneNumberWithError(e164);
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    const [kind, text] = LENGTH_FAILURES[err.message] ?? ["invalid-number", () => `it does not parse (${err.message})`];
    return unparsable(input, policy, kind, text("", e164));
  }
  const cc = phone.countryCallingCode;
  const lengthProblem = validatePhoneNumberLength(phone.number);
  if (lengthProblem !== undefined) {
    const [kind, text] = LENGTH_FAILURES[lengthProblem] ?? ["invalid-number", () => `its length is wrong (${lengthProblem})`];
    return unparsable(input, policy, kind, text(cc, phone.number));
  }
  if (!phone.isValid()) {
    return unparsable(input, policy, "invalid-number", `+${cc} ${phone.nationalNumber} is not in any range the +${cc} numbering plan assigns`);
  }
  const country = phone.country;
  if (country === undefined) {
    return unparsable(input, policy, "non-geographic", `+${cc} is a non-geographic calling code (a global service), so the number has no region`);
  }

  for (const { range, rule } of RANGE_INDEX) {
    if (rule.digitsAfterRange !== undefined || !phone.number.startsWith(range)) continue;
    if (typeof rule.region === "string") return decisionFor(input, phone.number, rule.region, policy, rule);
    if (rule.region.includes(country)) return decisionFor(input, phone.number, country, policy, rule);
  }
  return decisionFor(input, phone.number, country, policy, undefined);
}
