// Loads case files, validates them against the case schema and the closed vocabularies, and says
// what is wrong as `file:line: message`, every problem at once.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import { LineCounter, isNode, parseDocument } from "yaml";
import type { Document } from "yaml";
import type { Level, Requirement } from "../checks/model.ts";
import { STEP_NAMES, caseSchema } from "./schema.ts";
import { AREAS, CASE_FORMAT_VERSION } from "./vocabulary.ts";
import type { Need } from "./vocabulary.ts";

export const DEFAULT_CASES_DIR = fileURLToPath(new URL("../../cases", import.meta.url));

export type Step = Record<string, Record<string, unknown>> & { note?: string };

export interface ActorSpec {
  phone?: string;
  devices?: number;
  testPrefix?: boolean;
  /** "ineligible": one of the endpoint's gatekeeper accounts with an ineligible number (config accounts.ineligible). */
  account?: "ineligible";
}

export interface CaseDefinition {
  format: number;
  id: string;
  title: string;
  requirements: string[];
  level: Level;
  needs: Need[];
  tags: string[];
  spec: string;
  timeoutMs?: number;
  actors: Record<string, ActorSpec>;
  steps: Step[];
  /** Path relative to the cases directory's parent, e.g. cases/encryption/replay.yaml. */
  file: string;
  area: string;
  sha256: string;
}

export interface LintProblem {
  file: string;
  line: number;
  message: string;
}

export function formatProblem(p: LintProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

export class CaseLoadError extends Error {
  constructor(readonly problems: LintProblem[]) {
    super(`${problems.length} problem(s) in case files:\n${problems.map(formatProblem).join("\n")}`);
    this.name = "CaseLoadError";
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validateCase = ajv.compile(caseSchema);

export function listCaseFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...listCaseFiles(full));
    else if (entry.endsWith(".yaml") || entry.endsWith(".yml")) out.push(full);
  }
  return out;
}

function lineOf(doc: Document, counter: LineCounter, pathParts: (string | number)[]): number {
  for (let n = pathParts.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(pathParts.slice(0, n), true);
    if (isNode(node) && node.range) return counter.linePos(node.range[0]).line;
  }
  return 1;
}

/** ajv reports every oneOf branch; keep the errors of the branch named by the step's keyword. */
function stepErrors(errors: ErrorObject[], data: unknown): ErrorObject[] {
  const steps = (data as { steps?: unknown[] }).steps ?? [];
  const out: ErrorObject[] = [];
  const unknownReported = new Set<string>();
  for (const e of errors) {
    const m = /^\/steps\/(\d+)/.exec(e.instancePath);
    if (!m) {
      if (e.keyword !== "oneOf") out.push(e);
      continue;
    }
    const stepIndex = Number(m[1]);
    const stepData = steps[stepIndex];
    const keyword = stepData && typeof stepData === "object" ? Object.keys(stepData).find((k) => (STEP_NAMES as readonly string[]).includes(k)) : undefined;
    if (!keyword) {
      if (!unknownReported.has(m[1]!)) {
        unknownReported.add(m[1]!);
        out.push({ ...e, instancePath: `/steps/${stepIndex}`, keyword: "step", message: `is not a known step; steps are ${STEP_NAMES.join(", ")}` });
      }
      continue;
    }
    const branch = STEP_NAMES.indexOf(keyword as (typeof STEP_NAMES)[number]);
    if (e.schemaPath.startsWith(`#/properties/steps/items/oneOf/${branch}/`)) out.push(e);
  }
  return out;
}

function describeAjvError(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(case)";
  if (e.keyword === "additionalProperties") return `${where}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  return `${where}: ${e.message}`;
}

const LEVEL_RANK: Record<Level, number> = { MUST: 3, SHOULD: 2, MAY: 1 };

/** Parse and check one case file. Returns the case (when usable) and every problem found. */
export function loadCaseFile(file: string, requirements: Requirement[], root = path.dirname(DEFAULT_CASES_DIR)): { case?: CaseDefinition; problems: LintProblem[] } {
  const rel = path.relative(root, file) || file;
  const problems: LintProblem[] = [];
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return { problems: [{ file: rel, line: 1, message: `cannot read: ${(err as Error).message}` }] };
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  for (const err of doc.errors) {
    problems.push({ file: rel, line: err.linePos?.[0]?.line ?? 1, message: `YAML: ${err.message.split("\n")[0]}` });
  }
  if (problems.length) return { problems };
  const data = doc.toJS() as unknown;
  if (!validateCase(data)) {
    for (const e of stepErrors(validateCase.errors ?? [], data)) {
      const parts = e.instancePath.split("/").slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      problems.push({ file: rel, line: lineOf(doc, counter, parts), message: describeAjvError(e) });
    }
    return { problems };
  }
  const raw = data as Omit<CaseDefinition, "file" | "area" | "sha256" | "needs" | "actors"> & { needs?: Need[]; actors?: Record<string, ActorSpec> };
  const at = (...parts: (string | number)[]) => lineOf(doc, counter, parts);
  const problem = (line: number, message: string) => problems.push({ file: rel, line, message });

  const segments = rel.split(path.sep);
  const area = segments.length >= 2 ? segments[segments.length - 2]! : "";
  const slug = path.basename(file).replace(/\.ya?ml$/, "");
  if (!(AREAS as readonly string[]).includes(area)) problem(1, `case files live in cases/<area>/ with area one of ${AREAS.join(", ")}; found "${area}"`);
  if (raw.id !== `${area}/${slug}`) problem(at("id"), `id "${raw.id}" must equal the file's place, "${area}/${slug}"`);
  if (raw.format !== CASE_FORMAT_VERSION) problem(at("format"), `format ${raw.format} is not supported (this suite reads format ${CASE_FORMAT_VERSION})`);

  const known = new Map(requirements.map((r) => [r.id, r]));
  let strictest: Level | undefined;
  raw.requirements.forEach((id, i) => {
    const req = known.get(id);
    if (!req) problem(at("requirements", i), `unknown requirement ${id}`);
    else if (!strictest || LEVEL_RANK[req.level] > LEVEL_RANK[strictest]) strictest = req.level;
  });
  if (strictest && raw.level !== strictest) problem(at("level"), `level ${raw.level} does not match its strictest requirement (${strictest})`);

  const actors = raw.actors ?? {};
  const needs = new Set(raw.needs ?? []);
  const labels = new Set<string>();
  for (const [name, spec] of Object.entries(actors)) {
    if (spec.account === "ineligible" && !needs.has("ineligible-account")) {
      problem(at("actors", name), `actor ${name} uses an ineligible account, so needs must list "ineligible-account"`);
    }
  }
  raw.steps.forEach((stepDef, i) => {
    const name = Object.keys(stepDef).find((k) => k !== "note")!;
    const params = stepDef[name] as Record<string, unknown>;
    const line = at("steps", i);
    const actor = params.actor as string | undefined;
    if (actor && !(actor in actors)) problem(line, `step ${name}: actor "${actor}" is not declared under actors`);
    // Every place a step names a peer: to/with/of/from, the JID a block step blocks, and the
    // entries of a blocklist step's lists/lacks.
    const peers: [string, unknown][] = ["to", "with", "of", "from"].map((key) => [key, params[key]]);
    if (name === "block") peers.push(["jid", params.jid]);
    if (name === "blocklist") {
      for (const key of ["lists", "lacks"]) {
        const entries = Array.isArray(params[key]) ? (params[key] as unknown[]) : [];
        entries.forEach((peer, j) => peers.push([`${key}.${j}`, peer]));
      }
    }
    for (const [key, peer] of peers) {
      if (typeof peer !== "string") continue;
      if (peer === "reflector" && !needs.has("reflector")) problem(line, `step ${name}: talks to the reflector, so needs must list "reflector"`);
      else if (peer === "optout" && !needs.has("optout")) problem(line, `step ${name}: talks to the opted-out user, so needs must list "optout"`);
      else if (!["reflector", "optout", "server", "nobody"].includes(peer) && !peer.startsWith("jid:") && !(peer in actors)) {
        problem(line, `step ${name}: ${key} "${peer}" is neither an actor of this case nor reflector/optout/server/nobody/jid:…`);
      }
    }
    if (name === "register" && !needs.has("registration")) problem(line, `step register: registers in band, so needs must list "registration"`);
    for (const key of ["username", "phoneOf"]) {
      const named = name === "register" ? params[key] : undefined;
      if (typeof named === "string" && !(named in actors)) problem(line, `step register: ${key} "${named}" is not an actor of this case`);
    }
    const barrierVia = name === "expect-no" ? (params.barrier ?? "message") : name === "barrier" ? params.via : undefined;
    if (barrierVia === "hook" && !needs.has("hook:state")) problem(line, `step ${name}: a hook barrier calls the state hook, so needs must list "hook:state"`);
    if (barrierVia === "message" && !needs.has("reflector")) problem(line, `step ${name}: a message barrier talks to the reflector, so needs must list "reflector"`);
    if (name === "hook") {
      const hook = `hook:${params.name as string}` as Need;
      if (!needs.has(hook)) problem(line, `step hook: needs must list "${hook}"`);
      const args = (params.args ?? {}) as Record<string, unknown>;
      for (const key of ["to", "jid"]) {
        const peer = args[key];
        if (typeof peer === "string" && !peer.startsWith("jid:") && !["reflector", "optout", "nobody"].includes(peer) && !(peer in actors)) {
          problem(line, `step hook: args.${key} "${peer}" is not an actor of this case`);
        }
      }
    }
    const refs = [params.ref, params.lacks, params.lists, ...((params.refs as unknown[] | undefined) ?? [])].filter((r): r is string => typeof r === "string");
    for (const ref of refs) if (!labels.has(ref)) problem(line, `step ${name}: ref "${ref}" is not defined by an earlier step's "as"`);
    for (const key of ["requirement", "blobRequirement"]) {
      const stepRequirement = params[key] as string | undefined;
      if (stepRequirement && !raw.requirements.includes(stepRequirement)) {
        problem(line, `step ${name}: ${key} ${stepRequirement} is not listed in the case's requirements`);
      }
    }
    if (typeof params.as === "string") labels.add(params.as);
  });

  if (problems.length) return { problems };
  return {
    case: {
      ...raw,
      needs: [...needs],
      actors,
      file: rel,
      area,
      sha256: createHash("sha256").update(text).digest("hex"),
    },
    problems,
  };
}

/** Load every case under dir; duplicate ids are problems too. */
export function loadCases(requirements: Requirement[], files: string[] = listCaseFiles(DEFAULT_CASES_DIR), root?: string): { cases: CaseDefinition[]; problems: LintProblem[] } {
  const cases: CaseDefinition[] = [];
  const problems: LintProblem[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const result = loadCaseFile(file, requirements, root);
    problems.push(...result.problems);
    if (!result.case) continue;
    const previous = seen.get(result.case.id);
    if (previous) problems.push({ file: result.case.file, line: 1, message: `duplicate case id ${result.case.id} (also in ${previous})` });
    seen.set(result.case.id, result.case.file);
    cases.push(result.case);
  }
  return { cases, problems };
}

/** sha256 over the sorted (id, sha256) pairs: names the exact case set a report was made from. */
export function caseSetSha256(cases: CaseDefinition[]): string {
  const hash = createHash("sha256");
  // Plain code-unit order, not localeCompare: the hash must not depend on the machine's locale.
  for (const c of [...cases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) hash.update(`${c.id} ${c.sha256}\n`);
  return hash.digest("hex");
}
