// The in-process reference TPC/1 partner server (c2s only): what a compliant partner endpoint does,
// for the suite's own tests and as the baseline the known-bad mutants (faults) deviate from.
import { randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { deriveCredentials } from "../../protocol/scram.ts";
import { generateCertificate } from "../tls.ts";
import { AccountStore } from "./accounts.ts";
import type { AccountSummary } from "./accounts.ts";
import { C2sSession } from "./c2s.ts";
import { SessionRegistry } from "./context.ts";
import type { ClassifyNumber, ServerComponent, ServerContext } from "./context.ts";
import { SERVER_FAULTS } from "./policy.ts";
import { classifyTotal, validUsername } from "./register.ts";

export type { AccountSummary, AccountKind, Standing } from "./accounts.ts";
export type { ClassifyNumber, NumberClassification, ServerComponent } from "./context.ts";
export { POLICY_CHECKS, SERVER_FAULTS } from "./policy.ts";
export { TRANSPORT_FAULTS } from "./faults.ts";
export type { TransportFault } from "./faults.ts";
export { ACCOUNT_FEATURES, SERVER_FEATURES } from "./disco.ts";

export interface ReferenceServerOptions {
  /** XMPP domain; default "partner.test". */
  domain?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** PBKDF2 iterations for stored SCRAM credentials; default 64 (fast logins). */
  scramIterations?: number;
  /** Mutants by name; the server acts on those in SERVER_FAULTS and ignores others (e.g. reflector faults). */
  faults?: ReadonlySet<string>;
  /** Injected eligibility classifier (region policy). */
  classifyNumber: ClassifyNumber;
  /** Pre-provisioned partner accounts (P): the reflector, an opted-out user, … */
  partnerUsers: { username: string; password: string; optedOut?: boolean }[];
  /**
   * Pre-provisioned gatekeeper accounts (G), the "static list" of TPC/1 §2. Classified at start:
   * an ineligible number gives an account whose messages to and from P are refused (ineligible-region).
   */
  gatekeeperUsers?: { username: string; password: string; phone: string }[];
  /**
   * Services on their own JIDs in the domain (e.g. a XEP-0363 upload service, later): listed by
   * disco#items on the domain, and IQ get/set to their JID are handed to them. None by default.
   */
  components?: ServerComponent[];
  /** Largest stanza accepted from a client, in bytes (default: StreamParser's). */
  maxStanzaBytes?: number;
  /** Called with every stanza in and out and every routing decision. */
  log?: (line: string) => void;
}

export interface ReferenceServer {
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  /** The self-signed certificate: pass it as the CA when connecting (servername = domain). */
  readonly caCertPem: string;
  readonly faults: ReadonlySet<string>;
  /** Close every stream and the listener; resolves when all sockets are closed. */
  stop(): Promise<void>;
  /** For tests: every account and its state. */
  accounts(): AccountSummary[];
}

export async function startReferenceServer(options: ReferenceServerOptions): Promise<ReferenceServer> {
  const domain = (options.domain ?? "partner.test").toLowerCase();
  const host = options.host ?? "127.0.0.1";
  const scramIterations = options.scramIterations ?? 64;
  const faults: ReadonlySet<string> = new Set(options.faults ?? []);
  const log = options.log ?? (() => undefined);
  // The same fault set also carries client-side (reflector) faults: names this server does not know are ignored.
  const foreign = [...faults].filter((f) => !SERVER_FAULTS.has(f));
  if (foreign.length > 0) log(`faults not implemented by the server (ignored here): ${foreign.join(", ")}`);
  const { keyPem, certPem } = await generateCertificate(domain);
  const secureContext = tls.createSecureContext({ key: keyPem, cert: certPem, minVersion: "TLSv1.2" });

  const accounts = new AccountStore();
  let idCounter = 0;
  const components = new Map<string, ServerComponent>((options.components ?? []).map((c) => [c.jid.toLowerCase(), c]));
  const ctx: ServerContext = {
    domain,
    accounts,
    sessions: new SessionRegistry(),
    faults,
    scramIterations,
    components,
    classify: (phone) => classifyTotal(options.classifyNumber, phone),
    log,
    nextId: (prefix) => `${prefix}-${++idCounter}`,
  };

  for (const user of options.partnerUsers) {
    if (!validUsername(user.username)) throw new Error(`partner user ${JSON.stringify(user.username)} is not a valid JID localpart`);
    accounts.add({ username: user.username, kind: "partner", credentials: deriveCredentials(user.password, scramIterations), optedOut: user.optedOut ?? false });
  }
  for (const user of options.gatekeeperUsers ?? []) {
    if (!validUsername(user.username)) throw new Error(`gatekeeper user ${JSON.stringify(user.username)} is not a valid JID localpart`);
    const c = ctx.classify(user.phone);
    accounts.add({
      username: user.username,
      kind: "gatekeeper",
      credentials: deriveCredentials(user.password, scramIterations),
      phone: c.e164 ?? user.phone,
      region: c.region,
      standing: c.eligible ? "eligible" : "ineligible",
      standingReason: c.reason,
    });
  }

  const sessions = new Set<C2sSession>();
  const fakeSaltKey = randomBytes(32);
  let connections = 0;
  let stopping: Promise<void> | null = null;
  const listener = net.createServer((socket) => {
    if (stopping) {
      socket.destroy();
      return;
    }
    // Streams write many small elements back to back: no Nagle delay (40 ms stalls against delayed ACKs).
    socket.setNoDelay(true);
    const label = `c${++connections}`;
    log(`[${label}] connection from ${socket.remoteAddress}:${socket.remotePort}`);
    const session = new C2sSession({ ctx, socket, secureContext, fakeSaltKey, label, maxStanzaBytes: options.maxStanzaBytes });
    sessions.add(session);
    void session.closed.then(() => sessions.delete(session));
  });

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port ?? 0, host, () => {
      listener.removeListener("error", reject);
      resolve();
    });
  });
  listener.on("error", (err) => log(`listener error: ${err.message}`));
  const port = (listener.address() as net.AddressInfo).port;
  log(`reference partner ${domain} listening on ${host}:${port}${faults.size ? ` with faults ${[...faults].join(", ")}` : ""}`);

  return {
    domain,
    host,
    port,
    caCertPem: certPem,
    faults,
    accounts: () => accounts.list(),
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
        await Promise.all([...sessions].map((s) => s.end("system-shutdown")));
        await closed;
        log(`reference partner ${domain} stopped`);
      })();
      return stopping;
    },
  };
}
