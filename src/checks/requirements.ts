// The TPC/1 requirement list, read from profile/requirements.yaml and checked before use.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import { parse as parseYaml } from "yaml";
import type { Requirement } from "./model.ts";

/** profile/requirements.yaml, found relative to this module (works from a checkout and an installed package). */
export const REQUIREMENTS_FILE = fileURLToPath(new URL("../../profile/requirements.yaml", import.meta.url));

export const REQUIREMENT_ID = /^[A-Z]{3}-\d{2}$/;

const requirementsSchema = {
  type: "object",
  additionalProperties: false,
  required: ["profile", "requirements"],
  properties: {
    profile: {
      type: "object",
      additionalProperties: false,
      required: ["id", "version"],
      properties: {
        id: { type: "string", pattern: "^[A-Z][A-Z0-9]*$" },
        version: { type: "string", minLength: 1 },
      },
    },
    requirements: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["id", "level", "text", "source"],
        properties: {
          id: { type: "string", pattern: REQUIREMENT_ID.source },
          level: { enum: ["MUST", "SHOULD", "MAY"] },
          text: { type: "string", minLength: 1 },
          source: { type: "string", minLength: 1 },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateRequirementsFile = ajv.compile(requirementsSchema);

/** The requirement file is broken: every problem, each as `path: message`. */
export class RequirementsError extends Error {
  constructor(readonly problems: string[], readonly file: string) {
    super(`${file}: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "RequirementsError";
  }
}

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(file)";
  if (e.keyword === "additionalProperties") return `${where}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  return `${where}: ${e.message ?? e.keyword}`;
}

interface RequirementsFile {
  profile: { id: string; version: string };
  requirements: Requirement[];
}

function readRequirementsFile(file: string): RequirementsFile {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(file, "utf8"));
  } catch (e) {
    throw new RequirementsError([`(file): ${(e as Error).message}`], file);
  }
  if (!validateRequirementsFile(data)) throw new RequirementsError((validateRequirementsFile.errors ?? []).map(describe), file);
  const parsed = data as RequirementsFile;
  const problems: string[] = [];
  const seen = new Map<string, number>();
  parsed.requirements.forEach((r, i) => {
    const first = seen.get(r.id);
    if (first !== undefined) problems.push(`requirements.${i}.id: duplicate id ${r.id} (first at requirements.${first})`);
    else seen.set(r.id, i);
  });
  if (problems.length) throw new RequirementsError(problems, file);
  return parsed;
}

/** The requirements in file order. Throws RequirementsError listing every problem. */
export function loadRequirements(file: string = REQUIREMENTS_FILE): Requirement[] {
  return readRequirementsFile(file).requirements.map(({ id, level, text, source }) => ({ id, level, text, source }));
}

/** The profile the requirement file describes, e.g. { id: "TPC", version: "1" }. */
export const PROFILE: { readonly id: string; readonly version: string } = Object.freeze({ ...readRequirementsFile(REQUIREMENTS_FILE).profile });
