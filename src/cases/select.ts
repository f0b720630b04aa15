// Case selection: --case, --grep, --tag and --shard all narrow the same list; what is left out is `skip`.
import type { CaseDefinition } from "./loader.ts";

export interface Selection {
  /** Exact ids, or prefixes ending in "/" or "*" (e.g. "encryption/", "encryption/bundle-*"). */
  cases?: string[];
  grep?: string;
  tags?: string[];
}

export class SelectionError extends Error {}

function idMatches(id: string, pattern: string): boolean {
  if (pattern.endsWith("*")) return id.startsWith(pattern.slice(0, -1));
  if (pattern.endsWith("/")) return id.startsWith(pattern);
  return id === pattern;
}

export function selectCases(all: CaseDefinition[], selection: Selection): { selected: CaseDefinition[]; skipped: { case: CaseDefinition; reason: string }[]; filters: string[] } {
  let grep: RegExp | undefined;
  if (selection.grep) {
    try {
      grep = new RegExp(selection.grep, "i");
    } catch (err) {
      throw new SelectionError(`--grep: ${(err as Error).message}`);
    }
  }
  for (const pattern of selection.cases ?? []) {
    if (!all.some((c) => idMatches(c.id, pattern))) throw new SelectionError(`--case ${pattern}: no case has that id (see chatconform list)`);
  }
  const filters: string[] = [];
  if (selection.cases?.length) filters.push(`--case ${selection.cases.join(",")}`);
  if (selection.grep) filters.push(`--grep ${selection.grep}`);
  if (selection.tags?.length) filters.push(`--tag ${selection.tags.join(",")}`);
  const selected: CaseDefinition[] = [];
  const skipped: { case: CaseDefinition; reason: string }[] = [];
  for (const c of all) {
    const byCase = !selection.cases?.length || selection.cases.some((p) => idMatches(c.id, p));
    const byGrep = !grep || grep.test(c.id) || grep.test(c.title);
    const byTag = !selection.tags?.length || selection.tags.some((t) => c.tags.includes(t));
    if (byCase && byGrep && byTag) selected.push(c);
    else skipped.push({ case: c, reason: `filtered out by ${filters.join(" ")}` });
  }
  return { selected, skipped, filters };
}
