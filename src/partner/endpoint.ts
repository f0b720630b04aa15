// What both backends of the reference partner provision and hand to the suite: the same accounts
// and the same endpoint config, so that the two differ only in the server behind them.
import { randomBytes } from "node:crypto";
import type { EndpointConfig, StaticAccount } from "../config/config.ts";
import { DEFAULT_STANZA_TIMEOUT } from "../config/config.ts";
import { DEFAULT_TIMEOUTS, uriHost } from "../protocol/connection.ts";
import { DEFAULT_HTTP_TIMEOUT_MS } from "../protocol/upload.ts";
import type { PolicyName } from "../eligibility/classify.ts";

export interface PartnerAccounts {
  reflector: { username: string; password: string };
  optout: { username: string; password: string; optedOut: true };
  /**
   * A gatekeeper account provisioned with a Greenland number, outside both policies: registration
   * would refuse it, so it exists only as a static account (TPC/1 §2), for ELG-05 and ELG-06.
   */
  ineligible: StaticAccount & { phone: string };
}

const password = () => randomBytes(12).toString("base64url");

export function partnerAccounts(testPrefix: string): PartnerAccounts {
  return {
    reflector: { username: "reflector", password: password() },
    optout: { username: "optout", password: password(), optedOut: true },
    ineligible: { username: `${testPrefix}ineligible`, password: password(), phone: "+299 32 10 00" },
  };
}

export interface PartnerEndpointOptions {
  host: string;
  port: number;
  domain: string;
  caCertPem: string;
  testPrefix: string;
  ineligible: StaticAccount;
  policy: PolicyName;
  /** How many times the default IQ, stanza and HTTP waits the server may take to answer (default 1). */
  answerWaitFactor?: number;
}

export function partnerEndpointConfig(o: PartnerEndpointOptions): EndpointConfig {
  const factor = o.answerWaitFactor ?? 1;
  return {
    service: `xmpp://${uriHost(o.host)}:${o.port}`,
    domain: o.domain,
    tls: { ca: o.caCertPem },
    accounts: { mode: "register", prefix: o.testPrefix, static: [], ineligible: [o.ineligible] },
    reflector: `reflector@${o.domain}`,
    optout: `optout@${o.domain}`,
    hooks: ["reset", "block", "unblock", "send", "state", "reconnect"],
    policy: o.policy,
    timeouts: { ...DEFAULT_TIMEOUTS, iq: factor * DEFAULT_TIMEOUTS.iq, stanza: factor * DEFAULT_STANZA_TIMEOUT, http: factor * DEFAULT_HTTP_TIMEOUT_MS },
    maxStanzaBytes: 10 * 1024 * 1024,
    localTestEndpoint: true,
  };
}
