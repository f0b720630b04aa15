// XEP-0163 Personal Eventing Protocol on each account's bare JID: publish (auto-create, with
// publish-options pubsub#access_model), retrieve items, retract, delete.
// Notifications (+notify, last-item on presence) are not sent: nothing in TPC/1 relies on them
// (presence never crosses between G and P), and the suite fetches device lists and bundles.
import type { StanzaErrorInfo } from "../../protocol/stanza-error.ts";
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account, PepNode } from "./accounts.ts";
import { cloneElement, iqResult, serverError } from "./context.ts";
import type { ServerContext } from "./context.ts";

/** Default access model of a node created without publish-options (XEP-0163 §4.2). */
export const DEFAULT_ACCESS_MODEL = "presence";
const MAX_ITEMS_PER_NODE = 256;

const pubsubError = (condition: StanzaErrorInfo["condition"], type: StanzaErrorInfo["type"], name: string, attrs: Record<string, string> = {}, text?: string): StanzaErrorInfo => ({
  type,
  condition,
  app: { name, xmlns: NS.pubsubErrors, attrs },
  ...(text ? { text } : {}),
});

/** The owner's own IQ to its PEP service (`to` absent or its bare JID). */
export function handlePepOwner(ctx: ServerContext, owner: Account, iq: Element, pubsub: Element): Element {
  const action = pubsub.getChildElements().find((c) => c.name !== "publish-options");
  if (!action) return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "empty <pubsub/>" });
  if (pubsub.attrs.xmlns === NS.pubsubOwner) {
    if (action.name === "delete" && iq.attrs.type === "set") return deleteNode(ctx, owner, iq, action);
    return serverError(ctx, iq, pubsubError("feature-not-implemented", "cancel", "unsupported", { feature: action.name === "configure" ? "config-node" : action.name }));
  }
  if (action.name === "publish" && iq.attrs.type === "set") return publish(ctx, owner, iq, action, pubsub.getChild("publish-options"));
  if (action.name === "retract" && iq.attrs.type === "set") return retract(ctx, owner, iq, action);
  if (action.name === "items" && iq.attrs.type === "get") return retrieve(ctx, owner, true, iq, action);
  return serverError(ctx, iq, pubsubError("feature-not-implemented", "cancel", "unsupported", { feature: action.name }));
}

/** Another account's IQ to `owner`'s PEP service, answered by the server on the owner's behalf. */
export function handlePepVisitor(ctx: ServerContext, owner: Account, iq: Element, pubsub: Element): Element {
  const action = pubsub.getChildElements()[0];
  if (pubsub.attrs.xmlns === NS.pubsub && action?.name === "items" && iq.attrs.type === "get") return retrieve(ctx, owner, false, iq, action);
  if (iq.attrs.type === "set") return serverError(ctx, iq, { type: "auth", condition: "forbidden", text: "only the owner publishes to a PEP service" });
  return serverError(ctx, iq, pubsubError("feature-not-implemented", "cancel", "unsupported", { feature: action?.name ?? "unknown" }));
}

function publish(ctx: ServerContext, owner: Account, iq: Element, action: Element, options: Element | undefined): Element {
  const nodeName = action.attrs.node as string | undefined;
  if (!nodeName) return serverError(ctx, iq, pubsubError("bad-request", "modify", "nodeid-required"));
  const item = action.getChild("item");
  if (!item) return serverError(ctx, iq, pubsubError("bad-request", "modify", "item-required"));
  const requested = accessModelOf(options);
  let node = owner.pep.get(nodeName);
  if (!node) {
    node = { accessModel: requested ?? DEFAULT_ACCESS_MODEL, items: new Map() };
    owner.pep.set(nodeName, node);
  } else if (requested) {
    // XEP-0060 §7.1.5 would answer precondition-not-met when the existing configuration differs and
    // expect a node reconfiguration; this server has no node configuration, so publish-options apply.
    node.accessModel = requested;
  }
  const id = (item.attrs.id as string | undefined) || ctx.nextId("item");
  const stored = cloneElement(item);
  stored.attrs.id = id;
  node.items.delete(id);
  node.items.set(id, stored);
  while (node.items.size > MAX_ITEMS_PER_NODE) node.items.delete(node.items.keys().next().value!);
  return iqResult(iq, xml("pubsub", { xmlns: NS.pubsub }, xml("publish", { node: nodeName }, xml("item", { id }))));
}

/** pubsub#access_model from a publish-options data form, if present. */
function accessModelOf(options: Element | undefined): string | undefined {
  const form = options?.getChild("x", NS.xdata);
  const field = form?.getChildren("field").find((f) => f.attrs.var === "pubsub#access_model");
  const value = field?.getChildText("value")?.trim();
  return value || undefined;
}

function retract(ctx: ServerContext, owner: Account, iq: Element, action: Element): Element {
  const nodeName = action.attrs.node as string | undefined;
  if (!nodeName) return serverError(ctx, iq, pubsubError("bad-request", "modify", "nodeid-required"));
  const node = owner.pep.get(nodeName);
  if (!node) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
  const ids = action.getChildren("item").map((i) => i.attrs.id as string | undefined);
  if (ids.length === 0 || ids.some((id) => !id)) return serverError(ctx, iq, pubsubError("bad-request", "modify", "item-required"));
  for (const id of ids) node.items.delete(id!);
  return iqResult(iq);
}

function deleteNode(ctx: ServerContext, owner: Account, iq: Element, action: Element): Element {
  const nodeName = action.attrs.node as string | undefined;
  if (!nodeName) return serverError(ctx, iq, pubsubError("bad-request", "modify", "nodeid-required"));
  if (!owner.pep.delete(nodeName)) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
  return iqResult(iq);
}

/** Items retrieval (XEP-0060 §6.5): all, the last max_items, or the requested ids. */
function retrieve(ctx: ServerContext, owner: Account, isOwner: boolean, iq: Element, action: Element): Element {
  const nodeName = action.attrs.node as string | undefined;
  if (!nodeName) return serverError(ctx, iq, pubsubError("bad-request", "modify", "nodeid-required"));
  const node = owner.pep.get(nodeName);
  if (!node) return serverError(ctx, iq, { type: "cancel", condition: "item-not-found" });
  if (!isOwner) {
    const denied = accessDenied(node);
    if (denied) return serverError(ctx, iq, denied);
  }
  let items = [...node.items.values()];
  const wanted = action.getChildren("item").map((i) => i.attrs.id as string | undefined).filter((id): id is string => Boolean(id));
  if (wanted.length > 0) {
    items = wanted.map((id) => node.items.get(id)).filter((i): i is Element => i !== undefined);
  } else if (action.attrs.max_items !== undefined) {
    const max = Number(action.attrs.max_items);
    if (!Number.isInteger(max) || max < 0) return serverError(ctx, iq, { type: "modify", condition: "bad-request", text: "max_items is not a non-negative integer" });
    items = max === 0 ? [] : items.slice(-max);
  }
  return iqResult(iq, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: nodeName }, ...items.map(cloneElement))));
}

/** XEP-0060 §6.5.9 access checks for a non-owner. There are no rosters, so only `open` lets visitors read. */
function accessDenied(node: PepNode): StanzaErrorInfo | null {
  switch (node.accessModel) {
    case "open":
      return null;
    case "whitelist":
      return pubsubError("not-allowed", "cancel", "closed-node");
    case "roster":
      return pubsubError("not-authorized", "auth", "not-in-roster-group");
    default:
      return pubsubError("not-authorized", "auth", "presence-subscription-required");
  }
}
