// Steps of the eligibility catalogue (TPC/1 §9): in-band registration with a chosen number, the
// number change, and the comparison of two refusals. Expectations named `policy` come from the
// suite's own classifier (src/eligibility) under the run's policy, so one catalogue serves both.
import { randomBytes } from "node:crypto";
import { XmppConnection } from "../protocol/connection.ts";
import { StanzaError, describeStanzaError, parseStanzaError } from "../protocol/stanza-error.ts";
import type { ParsedStanzaError } from "../protocol/stanza-error.ts";
import { NS, xml } from "../protocol/xml.ts";
import type { Element } from "../protocol/xml.ts";
import { POLICIES, classifyNumber, isPolicyName } from "../eligibility/classify.ts";
import type { EligibilityDecision, PolicyName } from "../eligibility/classify.ts";
import type { CaseContext } from "./context.ts";
import { connectionOptions } from "./steps.ts";
import type { StepHandler } from "./steps.ts";

type Params = Record<string, unknown>;

/** The requirement on which a policy-dependent expectation is also checked. */
const POLICY_REQUIREMENT = "ELG-10";

function runPolicy(ctx: CaseContext): PolicyName {
  const policy = ctx.config.policy;
  if (!isPolicyName(policy)) throw new Error(`unknown eligibility policy ${policy}`);
  return policy;
}

/** The suite's decision for a number under the run's policy, and whether another policy decides otherwise. */
export function expectedDecision(ctx: CaseContext, phone: string): { decision: EligibilityDecision; policySensitive: boolean } {
  const policy = runPolicy(ctx);
  const decision = classifyNumber(phone, policy);
  const policySensitive = POLICIES.some((other) => classifyNumber(phone, other).eligible !== decision.eligible);
  return { decision, policySensitive };
}

function describeDecision(decision: EligibilityDecision): string {
  if (decision.e164 === null) return `unparsable (${decision.unparsable ?? "invalid"})`;
  return `${decision.e164} in ${decision.region}, ${decision.eligible ? "eligible" : "not eligible"} under ${decision.policy} (rule ${decision.ruleId})`;
}

/** Check under the step's requirement and, for a number the policies decide differently, under ELG-10. */
function checkBoth(ctx: CaseContext, requirements: string[], ok: boolean, expected: string, actual: string, evidence: number[]): void {
  for (const requirement of requirements) {
    if (!ctx.caseDef.requirements.includes(requirement)) {
      throw new Error(`the case checks ${requirement} (the number's decision depends on the policy) but does not list it in its requirements`);
    }
  }
  // Record every requirement's check before one failure stops the case.
  const failures = requirements.slice(0, -1);
  for (const requirement of failures) ctx.checkAndGoOn(requirement, ok, expected, actual, evidence);
  ctx.check(requirements.at(-1)!, ok, expected, actual, evidence);
}

function errorDescription(parsed: ParsedStanzaError): string {
  return describeStanzaError(parsed) + (parsed.text ? ` ("${parsed.text}")` : "");
}

/**
 * register: XEP-0077 registration on a fresh connection (after STARTTLS) with a chosen number.
 * `username`: an actor whose username to reuse (an existing account); default a fresh test username.
 * `phoneOf`: an actor whose number to use instead of `phone`.
 * `expect`: `policy` (the suite's classifier decides), `accepted` or `refused`.
 */
const register: StepHandler = async (ctx, p) => {
  const phone = p.phoneOf ? ctx.actor(p.phoneOf as string).phone : String(p.phone);
  const username = p.username ? ctx.actor(p.username as string).username : `${ctx.config.accounts.prefix}reg-${randomBytes(4).toString("hex")}`;
  const password = randomBytes(12).toString("base64url");
  ctx.secrets.push(password);
  const { decision, policySensitive } = expectedDecision(ctx, phone);
  const expectation = (p.expect as string | undefined) ?? "policy";
  const accept = expectation === "policy" ? decision.eligible : expectation === "accepted";
  const requirements = [(p.requirement as string | undefined) ?? (accept ? "ELG-01" : decision.e164 === null ? "ELG-04" : "ELG-02")];
  if (expectation === "policy" && policySensitive) requirements.push(POLICY_REQUIREMENT);

  const conn = await XmppConnection.open(connectionOptions(ctx, "registrar"));
  try {
    if (!conn.secure) {
      if (!conn.features?.getChild("starttls", NS.tls)) throw new Error("the endpoint offers no STARTTLS, and registration is offered only after it (TPC/1 §10a)");
      await conn.startTls();
    }
    let refusal: { parsed: ParsedStanzaError; stanza: Element; seq: number } | undefined;
    let resultSeq = 0;
    try {
      await conn.register(username, password, phone);
      resultSeq = ctx.transcript.at(-1)?.seq ?? 0;
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      refusal = { parsed: parseStanzaError(err.stanza), stanza: err.stanza, seq: ctx.entryOf(err.stanza)?.seq ?? 0 };
    }
    const about = `registration of ${JSON.stringify(phone)} (${describeDecision(decision)})`;
    if (p.as && refusal) ctx.labels.set(p.as as string, { type: "received", stanza: refusal.stanza, seq: refusal.seq });
    if (accept) {
      checkBoth(ctx, requirements, !refusal, `${about} accepted`, refusal ? `refused: ${errorDescription(refusal.parsed)}` : "accepted (IQ result)", [refusal?.seq ?? resultSeq]);
      return;
    }
    const expected = `${about} refused with not-allowed + <ineligible-region region='${decision.region}'/>`;
    if (!refusal) {
      checkBoth(ctx, requirements, false, expected, "accepted (IQ result)", [resultSeq]);
      return;
    }
    const { parsed } = refusal;
    const app = parsed.app;
    // The decision (refused) is what the policy fixes; the form of the refusal is the step's own requirement.
    checkBoth(ctx, requirements, true, `${about} refused`, errorDescription(parsed), [refusal.seq]);
    const ok = parsed.condition === "not-allowed" && app?.name === "ineligible-region" && app.xmlns === NS.tpcErrors && app.attrs.region === decision.region;
    ctx.check(requirements[0]!, ok, expected, errorDescription(parsed), [refusal.seq]);
    if (decision.e164 === null) {
      ctx.check(requirements[0]!, Boolean(parsed.text?.trim()), "a <text> that says why the number is refused", parsed.text ? `"${parsed.text}"` : "no <text>", [refusal.seq]);
    }
  } finally {
    await conn.close().catch(() => conn.destroy());
  }
};

/**
 * number-change: `<number-change xmlns='urn:x-tpc:1:account' number='…'/>` to the domain (TPC/1 §10a).
 * With `expect: policy` (the default) a parsable number must be answered with its E.164 form, its
 * region and the status the policy gives; an unparsable one with modify/bad-request.
 */
const numberChange: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected(0);
  const number = String(p.number);
  const requirement = p.requirement as string;
  const { decision, policySensitive } = expectedDecision(ctx, number);
  const requirements = policySensitive ? [requirement, POLICY_REQUIREMENT] : [requirement];
  const request = xml("iq", { type: "set", to: ctx.config.domain }, xml("number-change", { xmlns: NS.tpcAccount, number }));
  let answer: Element;
  let refused: ParsedStanzaError | undefined;
  try {
    answer = await device.conn.iq(request, ctx.config.timeouts.stanza);
  } catch (err) {
    if (!(err instanceof StanzaError)) throw err;
    answer = err.stanza;
    refused = parseStanzaError(err.stanza);
  }
  const seq = ctx.entryOf(answer)?.seq ?? 0;
  const about = `number change to ${JSON.stringify(number)} (${describeDecision(decision)})`;
  if (decision.e164 === null) {
    const ok = refused?.type === "modify" && refused.condition === "bad-request" && Boolean(refused.text?.trim());
    checkBoth(ctx, requirements, ok, `${about} refused with modify/bad-request and a <text> saying why`, refused ? errorDescription(refused) : `accepted: ${answer.toString()}`, [seq]);
    return;
  }
  const status = decision.eligible ? "eligible" : "read-only";
  const expected = `${about} answered <number-change number='${decision.e164}' region='${decision.region}' status='${status}'/>`;
  if (refused) {
    checkBoth(ctx, requirements, false, expected, `refused: ${errorDescription(refused)}`, [seq]);
    return;
  }
  const reply = answer.getChild("number-change", NS.tpcAccount);
  const actual = reply ? `<number-change number='${String(reply.attrs.number)}' region='${String(reply.attrs.region)}' status='${String(reply.attrs.status)}'/>` : `a result without <number-change/>: ${answer.toString()}`;
  const ok = reply?.attrs.number === decision.e164 && reply.attrs.region === decision.region && reply.attrs.status === status;
  checkBoth(ctx, requirements, ok, expected, actual, [seq]);
};

/**
 * same-error: refusals labelled by earlier steps are the same error: type, condition, application
 * condition with its attributes, and (for refusals of the same number) the text.
 */
const sameError: StepHandler = async (ctx, p) => {
  const refs = p.refs as string[];
  const requirement = p.requirement as string;
  const errors = refs.map((ref) => {
    const record = ctx.labels.get(ref);
    if (!record || record.type !== "received") {
      return { ref, parsed: undefined, seq: 0 };
    }
    return { ref, parsed: parseStanzaError(record.stanza), seq: record.seq };
  });
  const shape = (e: ParsedStanzaError | undefined) =>
    e ? `${e.type}/${e.condition}${e.app ? ` + <${e.app.name} xmlns='${e.app.xmlns}'${Object.entries(e.app.attrs).filter(([k]) => k !== "xmlns").sort().map(([k, v]) => ` ${k}='${v}'`).join("")}/>` : ""}` : "no refusal (the request was accepted)";
  const first = errors[0]!;
  const actual = errors.map((e) => `${e.ref}: ${shape(e.parsed)}`).join("; ");
  const same = errors.every((e) => e.parsed !== undefined && shape(e.parsed) === shape(first.parsed));
  ctx.check(requirement, same, `${refs.join(", ")} refused with the same error`, actual, errors.map((e) => e.seq).filter((s) => s > 0));
};

export const ELIGIBILITY_STEP_HANDLERS: Record<string, StepHandler> = {
  register, "number-change": numberChange, "same-error": sameError,
};
