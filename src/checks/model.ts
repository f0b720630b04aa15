// The result model shared by the runner, the checks and the reporters.

export type Level = "MUST" | "SHOULD" | "MAY";
export type CaseStatus = "pass" | "fail" | "error" | "not-tested" | "skip";
export type RequirementStatus = CaseStatus;
export type Verdict = "compliant" | "compliant-with-warnings" | "incomplete" | "non-compliant";

export interface Requirement {
  id: string;
  level: Level;
  text: string;
  source: string;
}

/** One verification made by a case step: what the profile expects, what came, and the proof. */
export interface CheckResult {
  requirement: string;
  ok: boolean;
  /** The step that made the check, e.g. "steps[4] expect receipt m1". */
  step: string;
  expected: string;
  actual: string;
  /** Transcript entry indexes (seq numbers) of the stanzas that prove the outcome. */
  evidence: number[];
}

export type Direction = "in" | "out";

/** One stanza on the wire, as seen by one connection of the suite. */
export interface TranscriptEntry {
  seq: number;
  /** Milliseconds since the case started. */
  t: number;
  /** Who saw it: an actor name ("alice") or "reflector". */
  actor: string;
  direction: Direction;
  /** Serialized stanza with secrets redacted. */
  xml: string;
  /** The decrypted content payload beside its ciphertext, when the suite could decrypt it. */
  decrypted?: string;
  note?: string;
}

export interface CaseResult {
  id: string;
  title: string;
  file: string;
  area: string;
  requirements: string[];
  level: Level;
  tags: string[];
  status: CaseStatus;
  /** Why the case is error / not-tested / skip, in plain words. */
  reason?: string;
  durationMs: number;
  /** Time spent in waits that ended by timeout (should be ~0 for passing cases). */
  timeoutWaitMs: number;
  checks: CheckResult[];
  failures: CheckResult[];
  transcript: TranscriptEntry[];
  sha256: string;
}

export interface RequirementResult extends Requirement {
  status: RequirementStatus;
  cases: string[];
}

export interface RunSummary {
  total: number;
  pass: number;
  fail: number;
  error: number;
  notTested: number;
  skip: number;
}
