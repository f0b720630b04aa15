// XEP-0077 in-band registration of gatekeeper actors (after STARTTLS, before authentication) and the
// TPC/1 number change (urn:x-tpc:1:account). An account registered with a phone is a G account.
import { deriveCredentials } from "../../protocol/scram.ts";
import { tpcCondition } from "../../protocol/stanza-error.ts";
import type { StanzaErrorInfo } from "../../protocol/stanza-error.ts";
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { iqResult, serverError } from "./context.ts";
import { hasFault } from "./faults.ts";
import type { NumberClassification, ServerContext } from "./context.ts";

export const REGISTRATION_INSTRUCTIONS =
  "Register a gatekeeper test actor: choose a username and password and give the actor's phone number in E.164 form.";

/** The injected classifier made total: ZZ for anything that did not parse (or made it throw). */
export function classifyTotal(classify: (phone: string) => NumberClassification, phone: string): NumberClassification {
  let result: NumberClassification;
  try {
    result = classify(phone);
  } catch (err) {
    return { eligible: false, region: "ZZ", e164: null, reason: `the number could not be classified: ${(err as Error).message}` };
  }
  if (result.e164 === null) return { ...result, eligible: false, region: "ZZ" };
  return { ...result, region: result.region || "ZZ" };
}

export function ineligibleError(classification: NumberClassification): StanzaErrorInfo {
  return {
    type: "cancel",
    condition: "not-allowed",
    app: tpcCondition("ineligible-region", { region: classification.region }),
    text: classification.reason || `numbers in region ${classification.region} are not eligible`,
  };
}

/** A valid JID localpart for a new account (a conservative subset of RFC 7622 usernames). */
export function validUsername(username: string): boolean {
  return username.length > 0 && Buffer.byteLength(username) <= 1023 && !/[\s"&'/:<>@\u0000-\u001f\u007f]/.test(username);
}

/** jabber:iq:register before authentication: the form (get) or the creation of a G account (set). */
export function handleRegistration(ctx: ServerContext, iq: Element, query: Element): Element {
  if (iq.attrs.type === "get") {
    return iqResult(
      iq,
      xml("query", { xmlns: NS.register }, xml("instructions", {}, REGISTRATION_INSTRUCTIONS), xml("username"), xml("password"), xml("phone")),
    );
  }
  if (iq.attrs.type !== "set") return serverError(ctx, iq, { type: "modify", condition: "bad-request" });
  if (query.getChild("remove")) {
    return serverError(ctx, iq, { type: "auth", condition: "not-authorized", text: "log in before removing an account" });
  }
  const username = query.getChildText("username")?.trim().toLowerCase() ?? "";
  const password = query.getChildText("password") ?? "";
  const phone = query.getChildText("phone")?.trim() ?? "";
  const missing = [!username && "username", !password && "password", !phone && "phone"].filter(Boolean);
  if (missing.length > 0) {
    return serverError(ctx, iq, { type: "modify", condition: "not-acceptable", text: `required field(s) missing: ${missing.join(", ")}` });
  }
  if (hasFault(ctx, "enumeration-leak")) {
    // fault: existence is revealed before eligibility is checked
    if (ctx.accounts.has(username)) return serverError(ctx, iq, { type: "cancel", condition: "conflict", text: "the username is taken" });
  }
  // Eligibility first, so that the refusal of an ineligible number is the same whether or not the
  // username exists (TPC/1 §9).
  const classification = ctx.classify(phone);
  if (!classification.eligible) return serverError(ctx, iq, ineligibleError(classification));
  if (!validUsername(username)) {
    return serverError(ctx, iq, { type: "modify", condition: "not-acceptable", text: "the username is not a valid JID localpart" });
  }
  if (ctx.accounts.has(username)) {
    return serverError(ctx, iq, { type: "cancel", condition: "conflict", text: "the username is taken" });
  }
  ctx.accounts.add({
    username,
    kind: "gatekeeper",
    credentials: deriveCredentials(password, ctx.scramIterations),
    phone: classification.e164!,
    region: classification.region,
    standing: "eligible",
    standingReason: classification.reason,
  });
  ctx.log(`registered gatekeeper actor ${username}@${ctx.domain} (${classification.e164}, ${classification.region})`);
  return iqResult(iq);
}

/** jabber:iq:register after authentication: nothing to change in band. */
export function handleRegistrationWhenLoggedIn(ctx: ServerContext, account: Account, iq: Element): Element {
  if (iq.attrs.type === "get") {
    return iqResult(iq, xml("query", { xmlns: NS.register }, xml("registered"), xml("username", {}, account.username)));
  }
  return serverError(ctx, iq, { type: "cancel", condition: "not-allowed", text: "this server does not change or remove accounts in band" });
}

/** <number-change xmlns='urn:x-tpc:1:account' number='+…'/> from a G account (TPC/1 §9, §10a). */
export function handleNumberChange(ctx: ServerContext, account: Account, iq: Element, payload: Element): Element {
  if (iq.attrs.type !== "set") return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "number-change is an IQ set" });
  if (account.kind !== "gatekeeper") {
    return serverError(ctx, iq, { type: "cancel", condition: "not-allowed", text: "only gatekeeper actors have a phone number" });
  }
  const number = typeof payload.attrs.number === "string" ? payload.attrs.number.trim() : "";
  if (!number) return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "the number attribute is missing" });
  const classification = ctx.classify(number);
  if (classification.e164 === null) {
    return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: classification.reason || "the number does not parse" });
  }
  account.phone = classification.e164;
  account.region = classification.region;
  account.standing = classification.eligible ? "eligible" : "read-only";
  account.standingReason = classification.reason;
  const status = classification.eligible ? "eligible" : "read-only";
  ctx.log(`number change of ${account.username}: ${classification.e164} (${classification.region}) → ${status}`);
  return iqResult(iq, xml("number-change", { xmlns: NS.tpcAccount, number: classification.e164, region: classification.region, status }));
}
