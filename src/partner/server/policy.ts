// TPC/1 policy between accounts, as an ordered list of named checks. Each check is one function
// that looks at one exchange (a stanza from one account to another) and either lets it pass (null),
// refuses it with a stanza error, or drops it silently. Each check can be switched off by a server
// fault (a mutant partner), named in `fault`, so the suite can be shown to catch the breakage.
import { tpcCondition } from "../../protocol/stanza-error.ts";
import type { StanzaErrorInfo } from "../../protocol/stanza-error.ts";
import { ENCRYPTED_NOTICE, NS } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { blocks } from "./blocking.ts";
import { TRANSPORT_FAULTS } from "./faults.ts";

/** One stanza from `sender` to another existing account. `stanza.attrs.from` is already stamped. */
export interface Exchange {
  readonly stanza: Element;
  readonly sender: Account;
  /** The sender's full JID. */
  readonly senderJid: string;
  readonly recipient: Account;
  /** The addressed JID, normalised (bare or full). */
  readonly target: string;
}

export type Outcome =
  | { readonly kind: "refuse"; readonly error: StanzaErrorInfo }
  | { readonly kind: "drop"; readonly reason: string };

export interface PolicyCheck {
  readonly name: string;
  /** The server fault that switches this check off. */
  readonly fault: string;
  readonly description: string;
  readonly check: (exchange: Exchange) => Outcome | null;
}

const refuse = (error: StanzaErrorInfo): Outcome => ({ kind: "refuse", error });
const drop = (reason: string): Outcome => ({ kind: "drop", reason });

export const SERVICE_UNAVAILABLE: StanzaErrorInfo = { type: "cancel", condition: "service-unavailable" };

function isGatekeeperPartnerPair(x: Exchange): boolean {
  return (x.sender.kind === "gatekeeper") !== (x.recipient.kind === "gatekeeper");
}

const isRequest = (x: Exchange) => x.stanza.name === "iq" && (x.stanza.attrs.type === "get" || x.stanza.attrs.type === "set");
const isMessage = (x: Exchange) => x.stanza.name === "message" && x.stanza.attrs.type !== "error";
const children = (x: Exchange) => x.stanza.getChildElements();

/** Messages and IQ requests get service-unavailable; everything else is dropped. */
function unavailable(x: Exchange, reason: string): Outcome {
  if (x.stanza.name === "presence" || x.stanza.attrs.type === "error" || x.stanza.attrs.type === "result") return drop(reason);
  return refuse(SERVICE_UNAVAILABLE);
}

/** An opted-out partner user looks exactly like a non-existent account to a G (and cannot reach G). */
export function optedOutHidden(x: Exchange): Outcome | null {
  if (!isGatekeeperPartnerPair(x)) return null;
  if (!(x.sender.optedOut || x.recipient.optedOut)) return null;
  return unavailable(x, "partner user has not opted in to third-party chats");
}

/** XEP-0191: the recipient blocks the sender. Reveal nothing: as if the recipient did not exist. */
export function blockedByRecipient(x: Exchange): Outcome | null {
  if (!blocks(x.recipient, x.senderJid)) return null;
  return unavailable(x, "recipient blocks the sender");
}

const SENDER_BLOCKS: StanzaErrorInfo = {
  type: "cancel",
  condition: "not-acceptable",
  app: { name: "blocked", xmlns: NS.blockingErrors, attrs: {} },
  text: "You have blocked this contact; unblock it to communicate.",
};

/** A message without content: a receipt, a chat marker or a chat state (no <body/>, no OMEMO <encrypted/>). */
const withoutContent = (x: Exchange) => isMessage(x) && !x.stanza.getChild("body") && !x.stanza.getChild("encrypted", NS.omemo);

/**
 * XEP-0191 §3.6: the sender blocks the recipient; its own stanza fails with <blocked/> (presence,
 * results and errors are dropped). Messages without content are blocked-receipts-by-sender's.
 */
export function blockedBySender(x: Exchange): Outcome | null {
  if (withoutContent(x) || !blocks(x.sender, x.target)) return null;
  if (x.stanza.name === "presence" || x.stanza.attrs.type === "error" || x.stanza.attrs.type === "result") {
    return drop("sender blocks the recipient");
  }
  return refuse(SENDER_BLOCKS);
}

/** XEP-0191 §3.6, TPC/1 §10: receipts, chat markers and chat states to a blocked contact fail like any message. */
export function blockedReceiptsBySender(x: Exchange): Outcome | null {
  if (!withoutContent(x) || !blocks(x.sender, x.target)) return null;
  return refuse(SENDER_BLOCKS);
}

/** TPC/1 §9: messages from or to a G whose number is outside the eligible region. */
export function eligibleRegion(x: Exchange): Outcome | null {
  if (!isMessage(x) || !isGatekeeperPartnerPair(x)) return null;
  const g = x.sender.kind === "gatekeeper" ? x.sender : x.recipient;
  if (g.standing !== "ineligible") return null;
  return refuse({
    type: "cancel",
    condition: "not-allowed",
    app: tpcCondition("ineligible-region", { region: g.region ?? "ZZ" }),
    text: `The gatekeeper user's number is not in an eligible region${g.standingReason ? `: ${g.standingReason}` : ""}.`,
  });
}

/** TPC/1 §9: after a change to an ineligible number the chat is read-only, both ways. */
export function readOnly(x: Exchange): Outcome | null {
  if (!isMessage(x) || !isGatekeeperPartnerPair(x)) return null;
  const g = x.sender.kind === "gatekeeper" ? x.sender : x.recipient;
  if (g.standing !== "read-only") return null;
  return refuse({
    type: "cancel",
    condition: "not-allowed",
    app: tpcCondition("read-only"),
    text: "This chat is read-only: the gatekeeper user's number moved outside the eligible region.",
  });
}

const GROUPS_REFUSED: StanzaErrorInfo = {
  type: "cancel",
  condition: "feature-not-implemented",
  app: tpcCondition("unsupported", { feature: "groups" }),
  text: "Groups are not supported between gatekeeper and partner users in TPC/1.",
};

/** TPC/1 §7: MUC invitations, direct (XEP-0249) and mediated (XEP-0045 §7.8). */
export function groupInvitesRefused(x: Exchange): Outcome | null {
  if (!isGatekeeperPartnerPair(x) || x.stanza.name !== "message" || x.stanza.attrs.type === "error") return null;
  const { stanza } = x;
  const invite = stanza.getChild("x", NS.conference) !== undefined || stanza.getChild("x", NS.mucUser)?.getChild("invite") !== undefined;
  return invite ? refuse(GROUPS_REFUSED) : null;
}

/** TPC/1 §7: groupchat messages, MIX, MUC joins. */
export function groupsRefused(x: Exchange): Outcome | null {
  if (!isGatekeeperPartnerPair(x) || x.stanza.attrs.type === "error") return null;
  const { stanza } = x;
  if (stanza.name === "message") {
    return stanza.attrs.type === "groupchat" || children(x).some((c) => isMix(c)) ? refuse(GROUPS_REFUSED) : null;
  }
  if (stanza.name === "iq") return isRequest(x) && children(x).some((c) => isMix(c)) ? refuse(GROUPS_REFUSED) : null;
  // A MUC join (presence with <x xmlns='…muc'/>) from G to P; presence the other way is only dropped.
  if (stanza.name === "presence" && x.sender.kind === "gatekeeper" && stanza.getChild("x", NS.muc) && stanza.attrs.type === undefined) {
    return refuse(GROUPS_REFUSED);
  }
  return null;
}

function isMix(element: Element): boolean {
  return typeof element.attrs.xmlns === "string" && element.attrs.xmlns.startsWith("urn:xmpp:mix:");
}

const CALLS_REFUSED: StanzaErrorInfo = {
  type: "cancel",
  condition: "feature-not-implemented",
  app: tpcCondition("unsupported", { feature: "calls" }),
  text: "Calls are not supported between gatekeeper and partner users in TPC/1.",
};

/** TPC/1 §7: Jingle IQs and Jingle Message Initiation; never an accept. */
export function callsRefused(x: Exchange): Outcome | null {
  if (!isGatekeeperPartnerPair(x)) return null;
  if (isMessage(x) && children(x).some((c) => c.attrs.xmlns === NS.jingleMessage)) return refuse(CALLS_REFUSED);
  if (isRequest(x) && x.stanza.getChild("jingle", NS.jingle)) return refuse(CALLS_REFUSED);
  return null;
}

const VCARD_IQS: ReadonlyArray<readonly [string, string]> = [
  ["vCard", "vcard-temp"],
  ["vcard", "urn:ietf:params:xml:ns:vcard-4.0"],
];

const ACTIVITY_IQS: ReadonlyArray<readonly [string, string]> = [
  ["query", "jabber:iq:last"],
  ["query", "jabber:iq:version"],
  ["time", "urn:xmpp:time"],
];

/** PEP nodes that carry a vCard. */
export const VCARD_PEP_NODES: ReadonlySet<string> = new Set(["urn:xmpp:vcard4"]);
/** PEP nodes that carry an avatar or a nick. */
export const AVATAR_PEP_NODES: ReadonlySet<string> = new Set([
  "urn:xmpp:avatar:metadata",
  "urn:xmpp:avatar:data",
  "http://jabber.org/protocol/nick",
]);
/** PEP nodes that carry identity (avatar, nick, vCard4): never readable across G and P. */
export const PRIVATE_PEP_NODES: ReadonlySet<string> = new Set([...VCARD_PEP_NODES, ...AVATAR_PEP_NODES]);

/** A request between G and P whose payload is one of `iqs` or reads one of the PEP `nodes`. */
function queriesAny(x: Exchange, iqs: ReadonlyArray<readonly [string, string]>, nodes: ReadonlySet<string>): boolean {
  if (!isRequest(x) || !isGatekeeperPartnerPair(x)) return false;
  const payload = children(x)[0];
  if (!payload) return false;
  if (iqs.some(([name, xmlns]) => payload.name === name && payload.attrs.xmlns === xmlns)) return true;
  if (payload.name === "pubsub" && payload.attrs.xmlns === NS.pubsub) {
    return payload.getChildElements().some((c) => typeof c.attrs.node === "string" && nodes.has(c.attrs.node));
  }
  return false;
}

/** TPC/1 §10 / §10a: vCard queries (vcard-temp, vCard4 IQ and PEP) between G and P reveal nothing. */
export function vcardQueriesRefused(x: Exchange): Outcome | null {
  return queriesAny(x, VCARD_IQS, VCARD_PEP_NODES) ? refuse(SERVICE_UNAVAILABLE) : null;
}

/** TPC/1 §10 / §10a: avatar and nick (PEP) between G and P reveal nothing. */
export function avatarQueriesRefused(x: Exchange): Outcome | null {
  return queriesAny(x, [], AVATAR_PEP_NODES) ? refuse(SERVICE_UNAVAILABLE) : null;
}

/** TPC/1 §10 / §10a: last activity, software version and time between G and P reveal nothing. */
export function activityQueriesRefused(x: Exchange): Outcome | null {
  return queriesAny(x, ACTIVITY_IQS, new Set()) ? refuse(SERVICE_UNAVAILABLE) : null;
}

/** TPC/1 §10a: presence of every type between G and P is dropped silently, both ways. */
export function noPresenceAcross(x: Exchange): Outcome | null {
  if (x.stanza.name !== "presence" || !isGatekeeperPartnerPair(x)) return null;
  return drop("no presence crosses between gatekeeper and partner users");
}

/**
 * TPC/1 §4 / §7: no plaintext crosses. A <body> without OMEMO <encrypted/> is refused, and so is a
 * <body> beside an <encrypted/> payload unless it is exactly the fixed notice.
 */
export function encryptionRequired(x: Exchange): Outcome | null {
  if (!isMessage(x) || !isGatekeeperPartnerPair(x)) return null;
  const bodies = x.stanza.getChildren("body");
  if (bodies.length === 0) return null;
  if (!x.stanza.getChild("encrypted", NS.omemo)) {
    return refuse({
      type: "cancel",
      condition: "not-acceptable",
      app: tpcCondition("encryption-required"),
      text: "Plaintext is not accepted: a TPC/1 message carries its content in an OMEMO <encrypted/> element.",
    });
  }
  if (bodies.every((body) => body.getText() === ENCRYPTED_NOTICE)) return null;
  return refuse({
    type: "cancel",
    condition: "not-acceptable",
    app: tpcCondition("encryption-required"),
    text: `A plaintext <body> beside the OMEMO <encrypted/> payload is refused: the body may only carry the notice "${ENCRYPTED_NOTICE}".`,
  });
}

/** In the order they run: the first check that does not pass decides. */
export const POLICY_CHECKS: readonly PolicyCheck[] = [
  { name: "opted-out-hidden", fault: "optout-enumerable", description: "an opted-out partner user is indistinguishable from a non-existent one", check: optedOutHidden },
  { name: "blocked-by-recipient", fault: "block-ignored", description: "stanzas from a blocked JID are refused as service-unavailable", check: blockedByRecipient },
  { name: "blocked-by-sender", fault: "blocked-send-delivered", description: "messages with content and IQ requests to a JID the sender blocks fail with <blocked/>; presence, results and errors to it are dropped", check: blockedBySender },
  { name: "blocked-receipts-by-sender", fault: "block-leaks-receipt", description: "receipts, chat markers and chat states (messages without content) to a JID the sender blocks fail with <blocked/>", check: blockedReceiptsBySender },
  { name: "eligible-region", fault: "no-eligibility-check-on-message", description: "messages from or to an ineligible G are refused with ineligible-region", check: eligibleRegion },
  { name: "read-only", fault: "read-only-not-enforced", description: "messages from or to a read-only G are refused with read-only", check: readOnly },
  { name: "group-invites-refused", fault: "group-invite-accepted", description: "direct and mediated MUC invitations are refused (unsupported groups)", check: groupInvitesRefused },
  { name: "groups-refused", fault: "groups-accepted", description: "groupchat messages, MUC joins and MIX are refused (unsupported groups)", check: groupsRefused },
  { name: "calls-refused", fault: "jingle-accepted", description: "Jingle and Jingle Message Initiation are refused (unsupported calls); the fault also lets the server forward Jingle to the user's device", check: callsRefused },
  { name: "vcard-queries-refused", fault: "vcard-served", description: "vcard-temp and vCard4 queries (IQ and PEP) answer service-unavailable", check: vcardQueriesRefused },
  { name: "avatar-queries-refused", fault: "avatar-served", description: "avatar and nick PEP queries answer service-unavailable", check: avatarQueriesRefused },
  { name: "activity-queries-refused", fault: "activity-served", description: "last activity, software version and time queries answer service-unavailable", check: activityQueriesRefused },
  { name: "no-presence-across", fault: "presence-leak", description: "presence between G and P is dropped", check: noPresenceAcross },
  { name: "encryption-required", fault: "plaintext-accepted", description: "a <body> without OMEMO <encrypted/>, or one other than the fixed notice beside it, is refused with encryption-required", check: encryptionRequired },
];

/** Every server fault this server understands, by name, with one sentence on what it breaks. */
export const SERVER_FAULTS: ReadonlyMap<string, string> = new Map([
  ...POLICY_CHECKS.map((c): [string, string] => [c.fault, `switches off the "${c.name}" check: ${c.description}`]),
  ...Object.entries(TRANSPORT_FAULTS),
]);

/** Run the checks that no fault switches off; null when the exchange may proceed. */
export function applyPolicy(exchange: Exchange, faults: ReadonlySet<string>): (Outcome & { check: string }) | null {
  if (exchange.sender === exchange.recipient) return null;
  for (const { name, fault, check } of POLICY_CHECKS) {
    if (faults.has(fault)) continue;
    const outcome = check(exchange);
    if (outcome) return { ...outcome, check: name };
  }
  return null;
}
