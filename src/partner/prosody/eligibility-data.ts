// The eligibility data of the Prosody policy module (lua/tpc_eligibility.lua), generated at launch
// from the one source of truth: territories.yaml through src/eligibility/classify.ts, and
// libphonenumber-js's own metadata. Nothing here is a second copy of the map:
// - every territory rule and every decision text comes from classify.ts, by classifying the rule's
//   example numbers (or libphonenumber's example number of a region);
// - the numbering plans are libphonenumber-js's (its regular expressions, lengths, national
//   prefixes), read through its Metadata API, verbatim;
// - the character classes of the normalisation (what is trimmed, what is a separator, what is a
//   letter) are measured with classify.ts's own normaliseNumber, code point by code point.
// The eligibility mutants of the partner (eligibility-faults.ts) become a `mode` or a policy here.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import metadataJson from "libphonenumber-js/metadata.max.json";
import examples from "libphonenumber-js/examples.mobile.json";
import { Metadata } from "libphonenumber-js/core";
import { getCountries, getExampleNumber } from "libphonenumber-js/max";
import type { CountryCode } from "libphonenumber-js/max";
import {
  DEFAULT_RULE_ID, TERRITORIES_FILE, classifyNumber, describePolicy, listRules, normaliseNumber,
} from "../../eligibility/classify.ts";
import type { PolicyName, TerritoryRule } from "../../eligibility/classify.ts";

/** How the partner classifies: the real classifier, or one of the known-bad ones of eligibility-faults.ts. */
export type EligibilityMode = "real" | "prefix-only" | "ignores-overrides" | "no-normalisation";

/** The eligibility faults (mutants) and what they change in the generated data. */
export const ELIGIBILITY_FAULT_MODES: Readonly<Record<string, { mode?: EligibilityMode; policy?: PolicyName }>> = {
  "eligibility-prefix-only": { mode: "prefix-only" },
  "eligibility-ignores-overrides": { mode: "ignores-overrides" },
  "eligibility-no-normalisation": { mode: "no-normalisation" },
  "eligibility-policy-ignored": { policy: "eea" },
};

interface Decided { eligible: boolean; reason: string }

interface PlanData {
  nnp?: string;
  lengths?: number[];
  npfp?: string;
  nptr?: string;
  leading?: string;
  has_types: boolean;
  types: Record<string, { pattern?: string; lengths?: number[] }>;
}

export interface EligibilityData {
  version: 1;
  policy: PolicyName;
  mode: EligibilityMode;
  default_rule: string;
  max_input_length: number;
  e164_max_digits: number;
  chars: { trim: [number, number][]; letters: [number, number][]; separators: [number, number][] };
  calling_codes: Record<string, string[]>;
  nongeo: Record<string, true>;
  plans: Record<string, PlanData>;
  rules: { range: string; id: string; region?: string; digits?: [number, number]; decisions: Record<string, Decided> }[];
  regions: Record<string, Decided>;
  listed: Record<string, true>;
}

const TYPE_NAMES = ["FIXED_LINE", "MOBILE", "TOLL_FREE", "PREMIUM_RATE", "SHARED_COST", "VOIP", "PERSONAL_NUMBER", "PAGER", "UAN", "VOICEMAIL"] as const;

/** The parts of libphonenumber-js's Metadata class used here (its typings do not declare them). */
interface MetadataApi {
  selectNumberingPlan(countryOrCallingCode: string): MetadataApi;
  nationalNumberPattern(): string | undefined;
  possibleLengths(): number[] | undefined;
  nationalPrefixForParsing(): string | undefined;
  nationalPrefixTransformRule(): string | undefined;
  leadingDigits(): string | undefined;
  hasTypes(): boolean;
  type(name: string): { pattern(): string | undefined; possibleLengths(): number[] | undefined } | undefined;
  getCountryCodesForCallingCode(callingCode: string): string[] | undefined;
  nonGeographic(): Record<string, unknown>;
}

/** The compact metadata writes an absent value as 0; JavaScript reads it as false, Lua would not. */
const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const lengths = (v: unknown): number[] | undefined => (Array.isArray(v) && v.length > 0 ? (v as number[]) : undefined);

function planOf(metadata: MetadataApi, key: string): PlanData {
  metadata.selectNumberingPlan(key);
  const types: PlanData["types"] = {};
  for (const name of TYPE_NAMES) {
    const t = metadata.type(name);
    if (t) types[name] = { pattern: text(t.pattern()), lengths: lengths(t.possibleLengths()) };
  }
  return {
    nnp: text(metadata.nationalNumberPattern()),
    lengths: lengths(metadata.possibleLengths()),
    npfp: text(metadata.nationalPrefixForParsing()),
    nptr: text(metadata.nationalPrefixTransformRule()),
    leading: text(metadata.leadingDigits()),
    has_types: metadata.hasTypes(),
    types,
  };
}

let numberingCache: Pick<EligibilityData, "calling_codes" | "nongeo" | "plans"> | undefined;

/** libphonenumber-js's numbering plans, as the Lua port reads them. */
function numberingPlans(): Pick<EligibilityData, "calling_codes" | "nongeo" | "plans"> {
  if (numberingCache) return numberingCache;
  const Ctor = Metadata as unknown as new (json: unknown) => MetadataApi;
  const metadata = new Ctor(metadataJson);
  const raw = metadataJson as unknown as { country_calling_codes: Record<string, string[]> };
  const callingCodes: Record<string, string[]> = {};
  for (const cc of Object.keys(raw.country_calling_codes)) {
    const countries = metadata.getCountryCodesForCallingCode(cc);
    if (countries) callingCodes[cc] = [...countries];
  }
  const plans: Record<string, PlanData> = {};
  for (const country of getCountries()) plans[country] = planOf(metadata, country);
  const nongeo: Record<string, true> = {};
  for (const cc of Object.keys(metadata.nonGeographic() ?? {})) {
    nongeo[cc] = true;
    plans[`+${cc}`] = planOf(metadata, cc);
  }
  numberingCache = { calling_codes: callingCodes, nongeo, plans };
  return numberingCache;
}

// ---- character classes, measured with normaliseNumber

type Ranges = [number, number][];

function toRanges(points: number[]): Ranges {
  const ranges: Ranges = [];
  for (const p of points) {
    const last = ranges.at(-1);
    if (last && last[1] === p - 1) last[1] = p;
    else ranges.push([p, p]);
  }
  return ranges;
}

function measureCharacterClasses(): EligibilityData["chars"] {
  const letters: number[] = [];
  const separators: number[] = [];
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    if ((cp >= 0x30 && cp <= 0x39) || cp === 0x2b) continue; // digits and "+" are the number itself
    const result = normaliseNumber(`+4930${String.fromCodePoint(cp)}123`);
    if (result.ok) separators.push(cp);
    else if (result.kind === "letters") letters.push(cp);
  }
  // Trimmed code points vanish before anything else: alone, they leave no input at all.
  const empty = normaliseNumber("");
  const trim = separators.filter((cp) => {
    const r = normaliseNumber(String.fromCodePoint(cp));
    return !r.ok && !empty.ok && r.kind === "empty" && r.reason === empty.reason;
  });
  return { trim: toRanges(trim), letters: toRanges(letters), separators: toRanges(separators) };
}

let charsCache: EligibilityData["chars"] | undefined;

/**
 * The character classes take a second to measure; they depend only on classify.ts and on the
 * Unicode tables of this Node, so they are cached per machine under the OS temp directory.
 */
function characterClasses(): EligibilityData["chars"] {
  if (charsCache) return charsCache;
  const source = readFileSync(path.join(path.dirname(TERRITORIES_FILE), "classify.ts"));
  const key = createHash("sha256").update(source).update(process.versions.unicode ?? "").update(process.version).digest("hex").slice(0, 16);
  const dir = path.join(os.tmpdir(), "chatconform-cache");
  const file = path.join(dir, `eligibility-chars-${key}.json`);
  try {
    charsCache = JSON.parse(readFileSync(file, "utf8")) as EligibilityData["chars"];
    return charsCache;
  } catch {
    // not cached yet (or unreadable): measure
  }
  charsCache = measureCharacterClasses();
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(charsCache));
    renameSync(tmp, file);
  } catch {
    // a cache that cannot be written only costs the next launch a second
  }
  return charsCache;
}

// ---- decisions, from classify.ts

const regionNames = new Intl.DisplayNames(["en"], { type: "region", fallback: "code" });

/** The regions of a policy and the policies it extends (the list of eligibility-faults.ts). */
function listedRegions(policy: PolicyName): Set<string> {
  const regions = new Set<string>();
  for (let p: PolicyName | undefined = policy; p !== undefined; p = describePolicy(p).extends) {
    for (const region of describePolicy(p).regions) regions.add(region);
  }
  return regions;
}

/**
 * The decision for a region no rule covers, in classify.ts's words. Only for the few regions whose
 * numbers libphonenumber's examples never classify without a rule (e.g. CX, which shares +61 with
 * AU); test/prosody-eligibility.test.ts checks these words against classify.ts for every region
 * that has an example.
 */
export function templateRegionDecision(policy: PolicyName, region: string): Decided {
  let at: PolicyName | undefined = policy;
  let listedAt: PolicyName | undefined;
  while (at !== undefined) {
    if (describePolicy(at).regions.includes(region)) {
      listedAt = at;
      break;
    }
    at = describePolicy(at).extends;
  }
  const eligible = listedAt !== undefined;
  const why = listedAt === undefined
    ? `${region} is not in its region set: ${describePolicy(policy).description}`
    : listedAt === policy ? `${region} is in its region set` : `${region} is in the ${listedAt} region set, which ${policy} includes`;
  let name = region;
  try {
    name = regionNames.of(region) ?? region;
  } catch {
    // keep the code
  }
  return { eligible, reason: `Region ${region} (${name}): ${eligible ? "eligible" : "not eligible"} under policy ${policy} (${why}).` };
}

function exampleOf(region: string): string | undefined {
  try {
    return getExampleNumber(region as CountryCode, examples as never)?.number;
  } catch {
    return undefined;
  }
}

/** Decisions for regions without a rule: classify.ts on libphonenumber's example of the region. */
export function sampledRegionDecisions(policy: PolicyName): Map<string, Decided> {
  const out = new Map<string, Decided>();
  for (const region of getCountries()) {
    const example = exampleOf(region);
    if (!example) continue;
    const d = classifyNumber(example, policy);
    if (d.ruleId === DEFAULT_RULE_ID && d.region === region) out.set(region, { eligible: d.eligible, reason: d.reason });
  }
  return out;
}

function ruleRegions(rule: TerritoryRule): string[] {
  return typeof rule.region === "string" ? [rule.region] : rule.region;
}

/** The decision of a rule for one of its regions: classify.ts on a number of that rule and region. */
function ruleDecision(policy: PolicyName, rule: TerritoryRule, region: string): Decided {
  const candidates = [...rule.examples, exampleOf(region)].filter((n): n is string => Boolean(n));
  for (const number of candidates) {
    const d = classifyNumber(number, policy);
    if (d.ruleId === rule.id && d.region === region) return { eligible: d.eligible, reason: d.reason };
  }
  throw new Error(`territory rule ${rule.id}: no example number classifies as region ${region}; add one to its examples in territories.yaml`);
}

const dataCache = new Map<string, EligibilityData>();

/** The data table of lua/tpc_eligibility.lua for a policy and mode. */
export function eligibilityData(policy: PolicyName, mode: EligibilityMode = "real"): EligibilityData {
  const key = `${policy}|${mode}`;
  const cached = dataCache.get(key);
  if (cached) return cached;
  const rules = listRules();
  // classify.ts's RANGE_INDEX: every (range, rule) pair, longest range first (a stable sort).
  const index = rules
    .flatMap((rule) => rule.ranges.map((range) => ({ range, rule })))
    .sort((a, b) => b.range.length - a.range.length);
  const sampled = sampledRegionDecisions(policy);
  const regions: Record<string, Decided> = {};
  for (const region of getCountries()) regions[region] = sampled.get(region) ?? templateRegionDecision(policy, region);
  const listed: Record<string, true> = {};
  for (const region of listedRegions(policy)) listed[region] = true;
  const data: EligibilityData = {
    version: 1,
    policy,
    mode,
    default_rule: DEFAULT_RULE_ID,
    max_input_length: 64,
    e164_max_digits: 15,
    chars: characterClasses(),
    ...numberingPlans(),
    rules: index.map(({ range, rule }) => ({
      range,
      id: rule.id,
      ...(typeof rule.region === "string" ? { region: rule.region } : {}),
      ...(rule.digitsAfterRange ? { digits: rule.digitsAfterRange } : {}),
      decisions: Object.fromEntries(ruleRegions(rule).map((region) => [region, ruleDecision(policy, rule, region)])),
    })),
    regions,
    listed,
  };
  dataCache.set(key, data);
  return data;
}

// ---- Lua text

function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, "utf8")) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += "\\\\";
    // Control characters and every byte of a non-ASCII character as \ddd: the file stays ASCII.
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${String(byte).padStart(3, "0")}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

/** A Lua literal for JSON-like data. */
export function toLua(value: unknown, indent = ""): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as Lua`);
    return String(value);
  }
  if (typeof value === "string") return luaString(value);
  const inner = `${indent}\t`;
  if (Array.isArray(value)) {
    if (value.length === 0) return "{}";
    if (value.every((v) => typeof v === "number")) return `{ ${value.join(", ")} }`;
    return `{\n${value.map((v) => `${inner}${toLua(v, inner)},`).join("\n")}\n${indent}}`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, v]) => `${inner}${/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : `[${luaString(k)}]`} = ${toLua(v, inner)},`).join("\n")}\n${indent}}`;
}

/** The text of tpc_eligibility_data.lua. */
export function eligibilityDataLua(policy: PolicyName, mode: EligibilityMode = "real"): string {
  return `-- Generated by chatconform (src/partner/prosody/eligibility-data.ts) from territories.yaml and\n-- libphonenumber-js ${libphonenumberVersion()}; do not edit: regenerate.\nreturn ${toLua(eligibilityData(policy, mode))}\n`;
}

function libphonenumberVersion(): string {
  return (metadataJson as unknown as { version?: number | string }).version !== undefined ? `metadata v${String((metadataJson as unknown as { version: number | string }).version)}` : "metadata";
}
