// `chatconform eligibility NUMBER... [--policy P] [--json]`: the decision of the eligibility
// classifier (src/eligibility/classify.ts) for each number, with its rule, reason and source.
// Numbers that do not parse are decisions too (exit 0); only a misused command exits 3.
import { Chalk, supportsColor } from "chalk";
import type { ChalkInstance } from "chalk";
import { POLICIES, classifyNumber, describePolicy, isPolicyName } from "../eligibility/classify.ts";
import type { EligibilityDecision, PolicyName } from "../eligibility/classify.ts";

/** Exit codes, as EXIT in program.ts: 0 the numbers were classified, 3 the command was misused. */
const EXIT_OK = 0;
const EXIT_BAD_INPUT = 3;

export interface EligibilityFlags {
  /** Default: eea. */
  policy?: string;
  json?: boolean;
}

/** Where the command prints; program.ts passes its own helpers. */
export interface EligibilityOutput {
  out: (line?: string) => void;
  err: (line?: string) => void;
  /** Default: colours when stdout is a terminal and NO_COLOR is not set. */
  color?: boolean;
}

const defaultOutput: EligibilityOutput = {
  out: (line = "") => process.stdout.write(`${line}\n`),
  err: (line = "") => process.stderr.write(`${line}\n`),
};

function knownPolicies(): string {
  return POLICIES.map((p) => `${p} (${describePolicy(p).title})`).join(", ");
}

/** The input as it appears on the first line of its block: quoted when blank or padded. */
function shownInput(input: string): string {
  return input === "" || input.trim() !== input ? JSON.stringify(input) : input;
}

function printDecision(d: EligibilityDecision, c: ChalkInstance, out: (line?: string) => void): void {
  if (d.e164 === null) {
    out(`${shownInput(d.input)}  →  ${c.yellow(`unparsable (${d.unparsable ?? "invalid-number"})`)}`);
  } else {
    const verdict = d.eligible ? c.green(`eligible (${d.policy})`) : c.red(`not eligible (${d.policy})`);
    out(`${shownInput(d.input)}  →  ${d.e164}  ${d.region}  ${verdict}`);
    out(`  rule: ${d.ruleId}`);
  }
  out(`  reason: ${d.reason}`);
  if (d.source !== undefined) out(`  source: ${d.source}`);
}

function summary(policy: PolicyName, decisions: EligibilityDecision[]): string {
  const eligible = decisions.filter((d) => d.eligible).length;
  const unparsable = decisions.filter((d) => d.e164 === null).length;
  const counts = `${eligible} of ${decisions.length} number${decisions.length === 1 ? "" : "s"} eligible${unparsable ? `, ${unparsable} unparsable` : ""}`;
  return `policy ${policy} (${describePolicy(policy).title}): ${counts}`;
}

/**
 * Classify each number under the policy and print the decisions (text, or JSON with --json).
 * Returns the exit code: 0 whenever the numbers were classified, whatever the decisions; 3 when
 * no number is given or the policy is unknown.
 */
export function eligibilityCommand(numbers: string[], flags: EligibilityFlags, output: EligibilityOutput = defaultOutput): number {
  const { out, err } = output;
  const policy = flags.policy ?? "eea";
  if (!isPolicyName(policy)) {
    err(`chatconform: unknown policy "${policy}"; known policies: ${knownPolicies()}`);
    return EXIT_BAD_INPUT;
  }
  if (numbers.length === 0) {
    err(`chatconform: eligibility needs at least one number, e.g. chatconform eligibility "+34 612 34 56 78"`);
    return EXIT_BAD_INPUT;
  }

  const decisions = numbers.map((n) => classifyNumber(n, policy));
  if (flags.json) {
    out(JSON.stringify({ policy, decisions }, null, 2));
    return EXIT_OK;
  }

  const color = output.color ?? (Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);
  const c: ChalkInstance = new Chalk({ level: color ? (supportsColor ? Math.max(1, supportsColor.level) : 1) as 1 | 2 | 3 : 0 });
  decisions.forEach((d, i) => {
    if (i > 0) out();
    printDecision(d, c, out);
  });
  out();
  out(summary(policy, decisions));
  return EXIT_OK;
}
