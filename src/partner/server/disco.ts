// XEP-0030 answers: the server itself, and accounts (their bare JIDs are answered by the server).
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { ServerContext } from "./context.ts";

/** What the server supports, in its own disco#info. */
export const SERVER_FEATURES = [
  NS.discoInfo,
  NS.discoItems,
  NS.blocking,
  NS.register,
  NS.tpc,
  NS.tpcAccount,
  "msgoffline",
  "urn:xmpp:ping",
] as const;

/**
 * What an account advertises on its bare JID to others (TPC/1 §7): the profile, receipts and OMEMO.
 * Never MUC, MIX, Jingle, Jingle Message, stickers or ephemeral messages.
 */
export const ACCOUNT_FEATURES = [NS.discoInfo, NS.tpc, NS.receipts, `${NS.omemoDeviceList}+notify`] as const;

/** Extra features an owner sees on its own bare JID: what its PEP service does. */
const PEP_OWNER_FEATURES = [
  `${NS.pubsub}#publish`,
  `${NS.pubsub}#publish-options`,
  `${NS.pubsub}#retrieve-items`,
  `${NS.pubsub}#retract-items`,
  `${NS.pubsub}#delete-nodes`,
  `${NS.pubsub}#access-open`,
  `${NS.pubsub}#access-presence`,
];

const features = (vars: readonly string[]) => vars.map((v) => xml("feature", { var: v }));

export function serverInfo(): Element {
  return xml(
    "query",
    { xmlns: NS.discoInfo },
    xml("identity", { category: "server", type: "im", name: "chatconform reference partner" }),
    ...features(SERVER_FEATURES),
  );
}

/** disco#items on the domain: the components (e.g. an upload service), none for now. */
export function serverItems(ctx: ServerContext): Element {
  return xml(
    "query",
    { xmlns: NS.discoItems },
    ...[...ctx.components.values()].map((c) => xml("item", { jid: c.jid, ...(c.name ? { name: c.name } : {}) })),
  );
}

export function accountInfo(isOwner: boolean, advertiseMuc = false): Element {
  const vars: string[] = isOwner ? [...ACCOUNT_FEATURES, ...PEP_OWNER_FEATURES] : [...ACCOUNT_FEATURES];
  if (advertiseMuc) vars.push(NS.muc); // fault disco-advertises-muc
  return xml(
    "query",
    { xmlns: NS.discoInfo },
    xml("identity", { category: "account", type: "registered" }),
    xml("identity", { category: "pubsub", type: "pep" }),
    ...features(vars),
  );
}

export function accountItems(): Element {
  return xml("query", { xmlns: NS.discoItems });
}
