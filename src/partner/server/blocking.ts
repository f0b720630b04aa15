// XEP-0191 Blocking Command: one block list per account, kept across that user's reconnects.
// Enforcement lives in policy.ts (blocked-by-recipient, blocked-by-sender).
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { iqResult, parseJid, serverError } from "./context.ts";
import type { BoundSession, ServerContext } from "./context.ts";

/** Whether `account` blocks `jid`: an item equal to its full JID, bare JID, domain or domain/resource. */
export function blocks(account: Account, jid: string): boolean {
  if (account.blocklist.size === 0) return false;
  const parsed = parseJid(jid);
  if (!parsed) return false;
  const candidates = [parsed.full, parsed.bare, parsed.domain];
  if (parsed.resource) candidates.push(`${parsed.domain}/${parsed.resource}`);
  return candidates.some((c) => account.blocklist.has(c));
}

/**
 * Answer a blocklist get or a block/unblock set from `session`; after the result of a change, push
 * it to all the user's resources. Returns null when the reply was already sent.
 */
export function handleBlocking(ctx: ServerContext, session: BoundSession, iq: Element, payload: Element): Element | null {
  const { account } = session;
  const type = iq.attrs.type;
  if (payload.name === "blocklist" && type === "get") {
    return iqResult(iq, xml("blocklist", { xmlns: NS.blocking }, ...[...account.blocklist].map((jid) => xml("item", { jid }))));
  }
  if ((payload.name === "block" || payload.name === "unblock") && type === "set") {
    const jids: string[] = [];
    for (const item of payload.getChildren("item")) {
      const jid = typeof item.attrs.jid === "string" ? parseJid(item.attrs.jid)?.full : undefined;
      if (!jid) return serverError(ctx, iq, { type: "modify", condition: "jid-malformed", text: `not a JID: ${String(item.attrs.jid)}` });
      jids.push(jid);
    }
    if (payload.name === "block") {
      if (jids.length === 0) return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "<block/> needs at least one <item jid='…'/>" });
      for (const jid of jids) account.blocklist.add(jid);
    } else if (jids.length === 0) {
      account.blocklist.clear();
    } else {
      for (const jid of jids) account.blocklist.delete(jid);
    }
    session.send(iqResult(iq));
    pushToResources(ctx, session, payload.name, jids);
    return null;
  }
  return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: `<${payload.name}/> is not a valid ${type} of ${NS.blocking}` });
}

/** XEP-0191 §3.3/§3.4: the change goes to every resource of the user as an IQ set from its bare JID. */
function pushToResources(ctx: ServerContext, session: BoundSession, change: string, jids: string[]): void {
  for (const resource of ctx.sessions.of(session.bare)) {
    const items = jids.map((jid) => xml("item", { jid }));
    resource.send(xml("iq", { type: "set", id: ctx.nextId("push"), from: session.bare, to: resource.jid }, xml(change, { xmlns: NS.blocking }, ...items)));
  }
}
