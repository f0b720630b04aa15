// Stanzas from a bound session: messages, presence and IQs, routed between local accounts under the
// TPC/1 policy (policy.ts), or answered by the server itself and on behalf of accounts.
import type { StanzaErrorInfo } from "../../protocol/stanza-error.ts";
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { handleBlocking } from "./blocking.ts";
import { cloneElement, iqPayload, iqResult, parseJid, serverError } from "./context.ts";
import type { BoundSession, Jid, ServerContext } from "./context.ts";
import { accountInfo, accountItems, serverInfo, serverItems } from "./disco.ts";
import { hasFault } from "./faults.ts";
import { handlePepOwner, handlePepVisitor } from "./pep.ts";
import { SERVICE_UNAVAILABLE, applyPolicy } from "./policy.ts";
import { handleNumberChange, handleRegistrationWhenLoggedIn } from "./register.ts";

/** A bound session as the router changes it. */
export interface RoutableSession extends BoundSession {
  setAvailable(available: boolean): void;
}

/** Test hooks (XEP-0050 nodes under urn:x-tpc:1:test:) addressed to a bare JID go to the user's client. */
export const TEST_HOOK_NODE_PREFIX = `${NS.tpcTest}:`;
const VCARD_NS = "vcard-temp";
const LAST_NS = "jabber:iq:last";
const MAX_OFFLINE_MESSAGES = 10_000;
const DELAY_NS = "urn:xmpp:delay";
const PING_NS = "urn:xmpp:ping";
const ROSTER_NS = "jabber:iq:roster";

/** Handle one stanza from `session`; stamps `from` with the session's full JID. */
export function routeStanza(ctx: ServerContext, session: RoutableSession, stanza: Element): void | Promise<void> {
  stanza.attrs.from = session.jid;
  let target: Jid | null = null;
  if (stanza.attrs.to !== undefined) {
    target = parseJid(String(stanza.attrs.to));
    if (!target) {
      if (stanza.attrs.type !== "error" && stanza.attrs.type !== "result") {
        session.send(serverError(ctx, stanza, { type: "modify", condition: "jid-malformed" }, ctx.domain));
      }
      return;
    }
    stanza.attrs.to = target.full;
  }
  switch (stanza.name) {
    case "message":
      return routeMessage(ctx, session, stanza, target ?? parseJid(session.bare)!);
    case "presence":
      return target ? routePresence(ctx, session, stanza, target) : ownPresence(ctx, session, stanza);
    default:
      return routeIq(ctx, session, stanza, target);
  }
}

function bounce(ctx: ServerContext, session: BoundSession, stanza: Element, error: StanzaErrorInfo): void {
  if (stanza.attrs.type === "error") {
    ctx.log(`drop error ${stanza.name} from ${session.jid} (never bounced): ${error.condition}`);
    return;
  }
  session.send(serverError(ctx, stanza, error));
}

/**
 * The policy for a stanza between two accounts; true when it may proceed. A refusal of a stanza
 * that must not be answered (error, result, most presence) is a drop.
 */
function allowed(ctx: ServerContext, session: BoundSession, stanza: Element, recipient: Account, target: Jid): boolean {
  const outcome = applyPolicy({ stanza, sender: session.account, senderJid: session.jid, recipient, target: target.full }, ctx.faults);
  if (!outcome) return true;
  const silent = stanza.attrs.type === "error" || stanza.attrs.type === "result";
  if (outcome.kind === "refuse" && !silent) {
    ctx.log(`refuse ${stanza.name} ${session.jid} → ${target.full} (${outcome.check}): ${outcome.error.condition}`);
    session.send(serverError(ctx, stanza, outcome.error));
  } else {
    ctx.log(`drop ${stanza.name} ${session.jid} → ${target.full} (${outcome.check})`);
  }
  return false;
}

// ---- messages ----

function routeMessage(ctx: ServerContext, session: BoundSession, message: Element, target: Jid): void {
  if (target.domain !== ctx.domain) {
    if (!ctx.components.has(target.bare)) bounce(ctx, session, message, { type: "cancel", condition: "remote-server-not-found" });
    return;
  }
  if (!target.local) return void ctx.log(`drop message to the server from ${session.jid}`);
  const recipient = ctx.accounts.get(target.local);
  if (!recipient) return bounce(ctx, session, message, SERVICE_UNAVAILABLE);
  if (!allowed(ctx, session, message, recipient, target)) return;
  deliverMessage(ctx, message, target, recipient);
}

function deliverMessage(ctx: ServerContext, message: Element, target: Jid, recipient: Account): void {
  if (target.resource) {
    const exact = ctx.sessions.get(target.full);
    if (exact) return exact.send(message);
  }
  const available = ctx.sessions.available(target.bare);
  if (available.length > 0) {
    for (const resource of available) resource.send(message);
    return;
  }
  const type = message.attrs.type ?? "normal";
  if (type !== "chat" && type !== "normal") return void ctx.log(`drop ${type} message to unavailable ${target.bare}`);
  if (hasFault(ctx, "offline-dropped")) return void ctx.log(`drop message to unavailable ${target.bare} (fault offline-dropped)`);
  if (recipient.offline.length >= MAX_OFFLINE_MESSAGES) {
    ctx.log(`offline store of ${target.bare} is full; dropping its oldest message`);
    recipient.offline.shift();
  }
  const stored = cloneElement(message);
  stored.append(xml("delay", { xmlns: DELAY_NS, from: ctx.domain, stamp: new Date().toISOString() }));
  recipient.offline.push(stored);
}

// ---- presence ----

/** Presence without `to`: availability of this resource, echoed to the user's available resources. */
function ownPresence(ctx: ServerContext, session: RoutableSession, presence: Element): void {
  const type = presence.attrs.type;
  if (type !== undefined && type !== "unavailable") return void ctx.log(`drop presence type=${type} without to from ${session.jid}`);
  const wasAvailable = session.available;
  if (type === "unavailable" && !wasAvailable) return;
  session.setAvailable(type === undefined);
  const audience = new Set(ctx.sessions.available(session.bare));
  audience.add(session);
  for (const resource of audience) {
    const copy = cloneElement(presence);
    copy.attrs.to = resource.jid;
    resource.send(copy);
  }
  if (type === undefined && !wasAvailable) {
    // Offline messages go to the first resource that becomes available, in arrival order.
    for (const message of session.account.offline.splice(0)) session.send(message);
  }
}

/** The presence a session sends when its stream ends while it is available. */
export function presenceGone(ctx: ServerContext, session: RoutableSession): void {
  if (!session.available) return;
  session.setAvailable(false);
  for (const resource of ctx.sessions.available(session.bare)) {
    if (resource !== session) resource.send(xml("presence", { type: "unavailable", from: session.jid, to: resource.jid }));
  }
}

function routePresence(ctx: ServerContext, session: BoundSession, presence: Element, target: Jid): void {
  if (target.domain !== ctx.domain || !target.local) return;
  const recipient = ctx.accounts.get(target.local);
  if (!recipient) return;
  if (!allowed(ctx, session, presence, recipient, target)) return;
  if (target.resource) {
    ctx.sessions.get(target.full)?.send(presence);
    return;
  }
  for (const resource of ctx.sessions.available(target.bare)) resource.send(presence);
}

// ---- IQ ----

function routeIq(ctx: ServerContext, session: BoundSession, iq: Element, target: Jid | null): void | Promise<void> {
  const type = iq.attrs.type;
  const isRequest = type === "get" || type === "set";
  if (!isRequest) {
    if (type !== "result" && type !== "error") session.send(serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "IQ type is not get, set, result or error" }));
    else deliverResponse(ctx, session, iq, target);
    return;
  }
  if (iq.attrs.id === undefined || iqPayload(iq) === null) {
    return session.send(serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "an IQ get or set has an id and exactly one child" }));
  }
  if (!target || (target.bare === session.bare && !target.resource)) return answer(session, serverIq(ctx, session, iq, "self"));
  if (target.domain !== ctx.domain) {
    const component = ctx.components.get(target.bare);
    if (component) return Promise.resolve(component.handleIq(iq, session)).then((reply) => session.send(reply));
    return session.send(serverError(ctx, iq, { type: "cancel", condition: "remote-server-not-found" }));
  }
  if (!target.local) return answer(session, serverIq(ctx, session, iq, "server"));
  const recipient = ctx.accounts.get(target.local);
  if (!recipient) return session.send(serverError(ctx, iq, SERVICE_UNAVAILABLE));
  if (!allowed(ctx, session, iq, recipient, target)) return;
  if (target.resource) {
    const resource = ctx.sessions.get(target.full);
    if (resource) return resource.send(iq);
    return session.send(serverError(ctx, iq, SERVICE_UNAVAILABLE));
  }
  answer(session, onBehalf(ctx, recipient, iq));
}

function answer(session: BoundSession, reply: Element | null): void {
  if (reply) session.send(reply);
}

/** Results and errors go to a connected full JID (under the policy); anything else is dropped. */
function deliverResponse(ctx: ServerContext, session: BoundSession, iq: Element, target: Jid | null): void {
  if (!target || !target.resource || target.domain !== ctx.domain || !target.local) return; // to the server or a bare JID: consumed
  const resource = ctx.sessions.get(target.full);
  const recipient = ctx.accounts.get(target.local);
  if (!resource || !recipient) return;
  if (recipient !== session.account && !allowed(ctx, session, iq, recipient, target)) return;
  resource.send(iq);
}

/** IQ get/set to the server (`to` = domain) or to the sender's own bare JID (`to` absent or bare). */
function serverIq(ctx: ServerContext, session: BoundSession, iq: Element, to: "server" | "self"): Element | null {
  const payload = iqPayload(iq)!;
  const xmlns = payload.attrs.xmlns as string | undefined;
  const type = iq.attrs.type;
  switch (xmlns) {
    case PING_NS:
      return type === "get" && payload.name === "ping" ? iqResult(iq) : serverError(ctx, iq, { type: "modify", condition: "bad-request" });
    case NS.discoInfo:
      if (type !== "get") break;
      if (payload.attrs.node !== undefined) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
      return iqResult(iq, to === "server" ? serverInfo() : accountInfo(true, hasFault(ctx, "disco-advertises-muc")));
    case NS.discoItems:
      if (type !== "get") break;
      if (payload.attrs.node !== undefined) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
      return iqResult(iq, to === "server" ? serverItems(ctx) : accountItems());
    case NS.blocking:
      return handleBlocking(ctx, session, iq, payload);
    case NS.register:
      return handleRegistrationWhenLoggedIn(ctx, session.account, iq);
    case NS.tpcAccount:
      if (payload.name !== "number-change") break;
      return handleNumberChange(ctx, session.account, iq, payload);
    case NS.pubsub:
    case NS.pubsubOwner:
      if (to !== "self") break;
      return handlePepOwner(ctx, session.account, iq, payload);
    case ROSTER_NS:
      // No rosters are kept: there are none between G and P, and the suite needs none.
      if (type === "get") return iqResult(iq, xml("query", { xmlns: ROSTER_NS }));
      return serverError(ctx, iq, { type: "cancel", condition: "not-allowed", text: "this server keeps no rosters" });
    case NS.session:
      return iqResult(iq);
    case VCARD_NS:
      // XEP-0054: a user sets and reads its own vCard.
      if (payload.name !== "vCard") break;
      if (type === "set") {
        session.account.vcard = cloneElement(payload);
        return iqResult(iq);
      }
      return iqResult(iq, session.account.vcard ? cloneElement(session.account.vcard) : xml("vCard", { xmlns: VCARD_NS }));
    case NS.bind:
      return serverError(ctx, iq, { type: "cancel", condition: "not-allowed", text: "a resource is bound already" });
  }
  return notUnderstood(ctx, iq);
}

/**
 * IQ get/set to another account's bare JID. The server answers disco and PEP for the account (G
 * cannot learn full JIDs without presence); test hooks are forwarded to the account's first
 * available resource.
 */
function onBehalf(ctx: ServerContext, owner: Account, iq: Element): Element | null {
  const payload = iqPayload(iq)!;
  const xmlns = payload.attrs.xmlns as string | undefined;
  if (xmlns === NS.commands && String(payload.attrs.node ?? "").startsWith(TEST_HOOK_NODE_PREFIX)) {
    const resource = ctx.sessions.available(`${owner.username}@${ctx.domain}`)[0];
    if (!resource) return serverError(ctx, iq, SERVICE_UNAVAILABLE);
    resource.send(iq);
    return null;
  }
  if (iq.attrs.type === "get" && (xmlns === NS.discoInfo || xmlns === NS.discoItems)) {
    if (payload.attrs.node !== undefined) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
    return iqResult(iq, xmlns === NS.discoInfo ? accountInfo(false, hasFault(ctx, "disco-advertises-muc")) : accountItems());
  }
  // XEP-0054 §3.1 and XEP-0012 §4: the server answers a user's vCard and last activity itself. The
  // TPC/1 policy keeps both from gatekeeper users before they get here (faults vcard-served, activity-served).
  if (iq.attrs.type === "get" && xmlns === VCARD_NS && payload.name === "vCard") {
    return iqResult(iq, owner.vcard ? cloneElement(owner.vcard) : xml("vCard", { xmlns: VCARD_NS }));
  }
  // XEP-0012 §4: last activity only to a requester authorized to see the user's presence, otherwise
  // forbidden. This server keeps no rosters, so no other account ever is (as Prosody's mod_lastactivity).
  if (iq.attrs.type === "get" && xmlns === LAST_NS && payload.name === "query") {
    return serverError(ctx, iq, { type: "auth", condition: "forbidden", text: "last activity is shown only to contacts with a presence subscription" });
  }
  // fault jingle-accepted: calls pass the policy, and the server hands them to the user's device
  if (ctx.faults.has("jingle-accepted") && xmlns === NS.jingle) {
    const resource = ctx.sessions.available(`${owner.username}@${ctx.domain}`)[0];
    if (!resource) return serverError(ctx, iq, SERVICE_UNAVAILABLE);
    resource.send(iq);
    return null;
  }
  if (xmlns === NS.pubsub || xmlns === NS.pubsubOwner) return handlePepVisitor(ctx, owner, iq, payload);
  return notUnderstood(ctx, iq);
}

/**
 * RFC 6120 §8.4: an IQ get/set whose payload the server does not understand gets
 * service-unavailable; under the fault `unknown-iq-ignored`, no answer at all.
 */
function notUnderstood(ctx: ServerContext, iq: Element): Element | null {
  if (hasFault(ctx, "unknown-iq-ignored")) {
    ctx.log(`ignore IQ ${String(iq.attrs.id)} from ${String(iq.attrs.from)}: payload not understood (fault unknown-iq-ignored)`);
    return null;
  }
  return serverError(ctx, iq, SERVICE_UNAVAILABLE);
}
