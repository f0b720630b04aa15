// Case files written for one test: a temp catalogue root with cases/<area>/<slug>.yaml, so the
// loader's id-equals-place rule holds, then loaded as the CLI would load them.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { formatProblem, loadCaseFile } from "../src/cases/loader.ts";
import type { CaseDefinition } from "../src/cases/loader.ts";
import { loadRequirements } from "../src/checks/requirements.ts";

const requirements = loadRequirements();

/** Write `body` as cases/<area>/<slug>.yaml under a fresh temp root. */
export function writeTempCase(area: string, slug: string, body: string): { file: string; root: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), "chatconform-cases-"));
  mkdirSync(path.join(root, "cases", area), { recursive: true });
  const file = path.join(root, "cases", area, `${slug}.yaml`);
  writeFileSync(file, body);
  return { file, root };
}

/** Every problem the loader finds in `body` (written as cases/<area>/<slug>.yaml), one per line. */
export function lintTempCase(area: string, slug: string, body: string): string {
  const { file, root } = writeTempCase(area, slug, body);
  return loadCaseFile(file, requirements, root).problems.map(formatProblem).join("\n");
}

/** Write the case of `id` (area/slug) from its lines and load it; it must load without problems. */
export function loadTempCase(id: string, lines: readonly string[]): CaseDefinition {
  const [area, slug] = id.split("/") as [string, string];
  const { file, root } = writeTempCase(area, slug, [...lines, ""].join("\n"));
  const loaded = loadCaseFile(file, requirements, root);
  assert.deepEqual(loaded.problems, []);
  return loaded.case!;
}
