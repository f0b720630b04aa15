// Case selection: --case, --grep, --tag and --shard all narrow the same list; what is left out is `skip`.
// A selection that runs nothing is bad input (SelectionError, exit 3), never an empty "compliant" run:
// an unknown tag, filters that together match no case, a shard the split leaves empty.
import type { CaseDefinition } from "./loader.ts";
import { TAGS } from "./vocabulary.ts";

/** One part of a deterministic split of the selected cases: `index` of `count`, 1-based (`--shard 2/4`). */
export interface Shard {
  index: number;
  count: number;
}

export interface Selection {
  /** Exact ids, or prefixes ending in "/" or "*" (e.g. "encryption/", "encryption/bundle-*"). */
  cases?: string[];
  grep?: string;
  tags?: string[];
  /** Run only this shard of what the filters above select. */
  shard?: Shard;
}

export class SelectionError extends Error {}

/** The most shards a run may be split into. */
export const MAX_SHARDS = 1000;

/** Parse `i/n` (1 ≤ i ≤ n ≤ 1000). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || count > MAX_SHARDS || index < 1 || index > count) {
    throw new SelectionError(`--shard ${text}: must be i/n with 1 ≤ i ≤ n ≤ ${MAX_SHARDS} (e.g. 2/4)`);
  }
  return { index, count };
}

/** Code-unit order: the same on every machine, whatever the locale. */
const byIdCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The shard (1-based) of each of `ids` when they are split `count` ways: sorted by id, dealt
 * round-robin (the first id to shard 1, the second to shard 2, …). It depends only on the set of
 * ids, not on their order, --jobs or the file system; every id is in exactly one shard, and the
 * shards differ in size by at most one.
 */
export function assignShards(ids: readonly string[], count: number): Map<string, number> {
  const sorted = [...new Set(ids)].sort(byIdCodeUnits);
  return new Map(sorted.map((id, k) => [id, (k % count) + 1]));
}

function idMatches(id: string, pattern: string): boolean {
  if (pattern.endsWith("*")) return id.startsWith(pattern.slice(0, -1));
  if (pattern.endsWith("/")) return id.startsWith(pattern);
  return id === pattern;
}

export interface SelectionResult {
  selected: CaseDefinition[];
  skipped: { case: CaseDefinition; reason: string }[];
  /** The filters as given (--case, --grep, --tag); the shard is not one of them. */
  filters: string[];
  shard?: Shard;
}

export function selectCases(all: CaseDefinition[], selection: Selection): SelectionResult {
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
  const unknownTags = (selection.tags ?? []).filter((t) => !(TAGS as readonly string[]).includes(t));
  if (unknownTags.length) {
    const hints = unknownTags.map((t) => {
      const near = nearest(t, TAGS);
      return `--tag ${t}: no such tag${near ? ` (did you mean ${near}?)` : ""}`;
    });
    throw new SelectionError(`${hints.join("; ")}; the tags are: ${TAGS.join(", ")}`);
  }
  const { shard } = selection;
  if (shard && !(Number.isInteger(shard.index) && Number.isInteger(shard.count) && shard.count >= 1 && shard.count <= MAX_SHARDS && shard.index >= 1 && shard.index <= shard.count)) {
    throw new SelectionError(`--shard ${shard.index}/${shard.count}: must be i/n with 1 ≤ i ≤ n ≤ ${MAX_SHARDS}`);
  }
  const filters: string[] = [];
  if (selection.cases?.length) filters.push(`--case ${selection.cases.join(",")}`);
  if (selection.grep) filters.push(`--grep ${selection.grep}`);
  if (selection.tags?.length) filters.push(`--tag ${selection.tags.join(",")}`);
  const matched: CaseDefinition[] = [];
  const skipped: { case: CaseDefinition; reason: string }[] = [];
  for (const c of all) {
    const byCase = !selection.cases?.length || selection.cases.some((p) => idMatches(c.id, p));
    const byGrep = !grep || grep.test(c.id) || grep.test(c.title);
    const byTag = !selection.tags?.length || selection.tags.some((t) => c.tags.includes(t));
    if (byCase && byGrep && byTag) matched.push(c);
    else skipped.push({ case: c, reason: `filtered out by ${filters.join(" ")}` });
  }
  if (matched.length === 0) {
    throw new SelectionError(filters.length ? `no case matches ${filters.join(" ")} (of the ${all.length} case(s) of the catalogue; see chatconform list): nothing would run` : "the catalogue has no case: nothing would run");
  }
  if (!shard) return { selected: matched, skipped, filters };
  if (shard.index > matched.length) {
    throw new SelectionError(`--shard ${shard.index}/${shard.count}: ${filters.length ? `${filters.join(" ")} selects` : "the catalogue has"} only ${matched.length} case(s), so a split into ${shard.count} leaves shard ${shard.index} without any: use at most ${matched.length} shard(s)`);
  }
  const shards = assignShards(matched.map((c) => c.id), shard.count);
  const selected: CaseDefinition[] = [];
  for (const c of matched) {
    const k = shards.get(c.id)!;
    if (k === shard.index) selected.push(c);
    else skipped.push({ case: c, reason: `in shard ${k}/${shard.count}, not in this run's --shard ${shard.index}/${shard.count}` });
  }
  return { selected, skipped, filters, shard: { index: shard.index, count: shard.count } };
}

/** The closest of `words` to `word` by edit distance, if it is close enough to be a likely typo. */
function nearest(word: string, words: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const w of words) {
    const d = editDistance(word.toLowerCase(), w);
    if (d < bestDistance) [best, bestDistance] = [w, d];
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}
