// The requirement table of docs/profile.md, generated from profile/requirements.yaml.
import type { Requirement } from "./model.ts";

export const TABLE_BEGIN = "<!-- requirements:begin -->";
export const TABLE_END = "<!-- requirements:end -->";

const escapeCell = (text: string) => text.replace(/\|/g, "\\|");

export function renderRequirementTable(requirements: Requirement[]): string {
  const lines = ["| id | level | requirement | rests on |", "|---|---|---|---|"];
  for (const r of requirements) lines.push(`| ${r.id} | ${r.level} | ${escapeCell(r.text)} | ${escapeCell(r.source)} |`);
  return lines.join("\n");
}

/** Replace the generated block in a document; throws when the markers are missing. */
export function withRequirementTable(doc: string, requirements: Requirement[]): string {
  const begin = doc.indexOf(TABLE_BEGIN);
  const end = doc.indexOf(TABLE_END);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`the document lacks the ${TABLE_BEGIN} … ${TABLE_END} markers`);
  return `${doc.slice(0, begin + TABLE_BEGIN.length)}\n${renderRequirementTable(requirements)}\n${doc.slice(end)}`;
}
