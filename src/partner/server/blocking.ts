// XEP-0191 Blocking Command: one block list per account, kept across that user's reconnects.
// Enforcement lives in policy.ts (blocked-by-recipient, blocked-by-sender, blocked-receipts-by-sender).
// Server faults (faults.ts) switched here, each marked "fault:": block-lost-on-reconnect,
// block-by-device-not-jid, gatekeeper-block-imported.
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { iqResult, parseJid, serverError } from "./context.ts";
import type { BoundSession, ServerContext, SessionRegistry } from "./context.ts";
import { hasFault } from "./faults.ts";

/**
 * Fault block-lost-on-reconnect only: the session each item was set from. Such an item lives with
 * that session, like an XEP-0016 active list, and lapses when the session ends. Empty otherwise.
 */
const setBySession = new WeakMap<Account, Map<string, { session: BoundSession; sessions: SessionRegistry }>>();

/** Whether an item of `account`'s list has lapsed with the session that set it (and forget it if so). */
function lapsed(account: Account, item: string): boolean {
  const owner = setBySession.get(account)?.get(item);
  if (!owner || owner.sessions.get(owner.session.jid) === owner.session) return false;
  account.blocklist.delete(item);
  setBySession.get(account)!.delete(item);
  return true;
}

/** The items of `account`'s block list in force. */
export function blocklistOf(account: Account): string[] {
  return [...account.blocklist].filter((item) => !lapsed(account, item));
}

/** Whether `account` blocks `jid`: an item equal to its full JID, bare JID, domain or domain/resource. */
export function blocks(account: Account, jid: string): boolean {
  if (account.blocklist.size === 0) return false;
  const parsed = parseJid(jid);
  if (!parsed) return false;
  const candidates = [parsed.full, parsed.bare, parsed.domain];
  if (parsed.resource) candidates.push(`${parsed.domain}/${parsed.resource}`);
  return candidates.some((c) => account.blocklist.has(c) && !lapsed(account, c));
}

/**
 * Fault block-by-device-not-jid only: a user's bare JID stands for the full JIDs of the resources
 * (devices) it has bound at this moment; a user with none, or any other item, stands for itself.
 */
function devicesOf(ctx: ServerContext, jid: string): string[] {
  const parsed = parseJid(jid);
  if (!parsed?.local || parsed.resource || parsed.domain !== ctx.domain) return [jid];
  const resources = ctx.sessions.of(parsed.bare).map((s) => s.jid);
  return resources.length > 0 ? resources : [jid];
}

/**
 * Answer a blocklist get or a block/unblock set from `session`; after the result of a change, push
 * it to all the user's resources. Returns null when the reply was already sent.
 */
export function handleBlocking(ctx: ServerContext, session: BoundSession, iq: Element, payload: Element): Element | null {
  const { account } = session;
  const type = iq.attrs.type;
  if (payload.name === "blocklist" && type === "get") {
    return iqResult(iq, xml("blocklist", { xmlns: NS.blocking }, ...blocklistOf(account).map((jid) => xml("item", { jid }))));
  }
  if ((payload.name === "block" || payload.name === "unblock") && type === "set") {
    const jids: string[] = [];
    for (const item of payload.getChildren("item")) {
      const jid = typeof item.attrs.jid === "string" ? parseJid(item.attrs.jid)?.full : undefined;
      if (!jid) return serverError(ctx, iq, { type: "modify", condition: "jid-malformed", text: `not a JID: ${String(item.attrs.jid)}` });
      jids.push(jid);
    }
    const byDevice = hasFault(ctx, "block-by-device-not-jid");
    let changed = jids;
    if (payload.name === "block") {
      if (jids.length === 0) return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "<block/> needs at least one <item jid='…'/>" });
      // fault block-by-device-not-jid: the user's current devices are blocked, not the user
      if (byDevice) changed = jids.flatMap((jid) => devicesOf(ctx, jid));
      for (const jid of changed) {
        account.blocklist.add(jid);
        if (hasFault(ctx, "block-lost-on-reconnect")) { // fault: the item lives with the session that set it
          if (!setBySession.has(account)) setBySession.set(account, new Map());
          setBySession.get(account)!.set(jid, { session, sessions: ctx.sessions });
        }
      }
    } else if (jids.length === 0) {
      account.blocklist.clear();
      setBySession.get(account)?.clear();
    } else {
      // Under block-by-device-not-jid, unblocking the user lifts the blocks of its devices too.
      if (byDevice) changed = [...account.blocklist].filter((item) => jids.includes(item) || jids.includes(parseJid(item)?.bare ?? ""));
      for (const jid of changed) {
        account.blocklist.delete(jid);
        setBySession.get(account)?.delete(jid);
      }
    }
    session.send(iqResult(iq));
    pushToResources(ctx, session.bare, payload.name, changed);
    // fault gatekeeper-block-imported: a G's block of a partner user lands in that user's own list
    if (payload.name === "block" && account.kind === "gatekeeper" && hasFault(ctx, "gatekeeper-block-imported")) importBlock(ctx, session.bare, jids);
    return null;
  }
  return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: `<${payload.name}/> is not a valid ${type} of ${NS.blocking}` });
}

/** Fault gatekeeper-block-imported only: each blocked partner user of this domain blocks `blocker` back (and keeps doing so). */
function importBlock(ctx: ServerContext, blocker: string, jids: string[]): void {
  for (const jid of jids) {
    const parsed = parseJid(jid);
    if (!parsed?.local || parsed.domain !== ctx.domain) continue;
    const partner = ctx.accounts.get(parsed.local);
    if (!partner || partner.kind !== "partner" || partner.blocklist.has(blocker)) continue;
    partner.blocklist.add(blocker);
    pushToResources(ctx, parsed.bare, "block", [blocker]);
  }
}

/** XEP-0191 §3.3/§3.4: the change goes to every resource of the user as an IQ set from its bare JID. */
function pushToResources(ctx: ServerContext, bare: string, change: string, jids: string[]): void {
  for (const resource of ctx.sessions.of(bare)) {
    const items = jids.map((jid) => xml("item", { jid }));
    resource.send(xml("iq", { type: "set", id: ctx.nextId("push"), from: bare, to: resource.jid }, xml(change, { xmlns: NS.blocking }, ...items)));
  }
}
