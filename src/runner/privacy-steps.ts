// Steps of the privacy, opt-in and unsupported-feature catalogue (TPC/1 §7, §10).
import { NS, xml } from "../protocol/xml.ts";
import { StanzaError, describeStanzaError } from "../protocol/stanza-error.ts";
import type { StepHandler } from "./steps.ts";

/** What a partner user must advertise, and what it must never (TPC/1 §7, UNS-10). */
export const REQUIRED_FEATURES = [NS.tpc, NS.receipts, `${NS.omemoDeviceList}+notify`];
export const FORBIDDEN_FEATURES: readonly { prefix: string; what: string }[] = [
  { prefix: NS.muc, what: "MUC (XEP-0045)" },
  { prefix: "urn:xmpp:mix:", what: "MIX (XEP-0369)" },
  { prefix: NS.conference, what: "direct MUC invitations (XEP-0249)" },
  { prefix: "urn:xmpp:jingle", what: "Jingle (XEP-0166 and its applications, Jingle Message)" },
  { prefix: "urn:xmpp:stickers", what: "stickers (XEP-0449)" },
  { prefix: "urn:xmpp:ephemeral", what: "ephemeral messages" },
];

/**
 * disco-features: disco#info on a peer's bare JID lists every required feature and none of the
 * forbidden ones (a feature is forbidden when it starts with a forbidden namespace).
 */
const discoFeatures: StepHandler = async (ctx, p) => {
  const device = ctx.actor(p.actor as string).connected(0);
  const requirement = p.requirement as string;
  const to = ctx.resolve(p.of as string);
  let features: string[];
  let seq = 0;
  try {
    const result = await device.conn.iq(xml("iq", { type: "get", to }, xml("query", { xmlns: NS.discoInfo })), ctx.config.timeouts.stanza);
    seq = ctx.entryOf(result)?.seq ?? 0;
    features = (result.getChild("query", NS.discoInfo)?.getChildren("feature") ?? []).map((f) => String(f.attrs.var ?? ""));
  } catch (err) {
    if (!(err instanceof StanzaError)) throw err;
    ctx.check(requirement, false, `disco#info of ${to} answered`, `an IQ error ${describeStanzaError(err.error)}`, [ctx.entryOf(err.stanza)?.seq ?? 0]);
    return;
  }
  const missing = REQUIRED_FEATURES.filter((f) => !features.includes(f));
  ctx.check(requirement, missing.length === 0, `features ${REQUIRED_FEATURES.join(", ")}`, missing.length ? `missing ${missing.join(", ")}; listed: ${features.join(", ")}` : "all listed", [seq]);
  const forbidden = features.flatMap((f) => FORBIDDEN_FEATURES.filter((x) => f.startsWith(x.prefix)).map((x) => `${f} (${x.what})`));
  ctx.check(requirement, forbidden.length === 0, "no group, call, sticker or ephemeral feature", forbidden.length ? `listed: ${forbidden.join(", ")}` : "none listed", [seq]);
};

export const PRIVACY_STEP_HANDLERS: Record<string, StepHandler> = { "disco-features": discoFeatures };
