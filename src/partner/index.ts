// The reference partner: the in-process TPC/1 server plus the reflector as a real client of it.
import type { EndpointConfig } from "../config/config.ts";
import type { PolicyName } from "../eligibility/classify.ts";
import { startReferenceServer } from "./server/index.ts";
import { startReflector } from "./reflector.ts";
import { generateCertificate } from "./tls.ts";
import { startUploadService } from "./upload.ts";
import { findMutant, MUTANTS } from "./mutants.ts";
import { partnerClassifier } from "./eligibility-faults.ts";
import { startProsodyPartner } from "./prosody/index.ts";
import { partnerAccounts, partnerEndpointConfig } from "./endpoint.ts";

/** Which server the reference partner runs on: the in-process TypeScript server, or Prosody. */
export type PartnerBackend = "builtin" | "prosody";
export const PARTNER_BACKENDS: readonly PartnerBackend[] = ["builtin", "prosody"];

export interface ReferencePartnerOptions {
  /** Default "builtin". "prosody" needs Prosody installed (src/partner/prosody/). */
  backend?: PartnerBackend;
  mutant?: string;
  port?: number;
  host?: string;
  policy?: PolicyName;
  log?: (line: string) => void;
}

export interface ReferencePartner {
  config: EndpointConfig;
  /** PEM of the partner's self-signed certificate, for configs that point at it from elsewhere. */
  caCertPem: string;
  stop(): Promise<void>;
}

export const TEST_PREFIX = "tpc-test-";

export class UnknownMutantError extends Error {
  constructor(name: string) {
    super(`unknown mutant "${name}"; known mutants: ${MUTANTS.map((m) => m.name).join(", ")}`);
    this.name = "UnknownMutantError";
  }
}

export async function startReferencePartner(options: ReferencePartnerOptions = {}): Promise<ReferencePartner> {
  const faults = new Set<string>();
  if (options.mutant) {
    if (!findMutant(options.mutant)) throw new UnknownMutantError(options.mutant);
    faults.add(options.mutant);
  }
  if (options.backend === "prosody") return startProsodyPartner({ ...options, testPrefix: TEST_PREFIX });
  const policy = options.policy ?? "eea";
  const { reflector: reflectorAccount, optout: optoutAccount, ineligible: ineligibleAccount } = partnerAccounts(TEST_PREFIX);
  const domain = "partner.test";
  const host = options.host ?? "127.0.0.1";
  // The XEP-0363 upload service at upload.<domain>, over HTTPS with the server's own certificate
  // (it also names 127.0.0.1); the suite finds it by disco#items on the domain.
  const upload = await startUploadService({ domain, host, tls: await generateCertificate(domain), faults, log: options.log });
  let server;
  try {
    server = await startReferenceServer({
      domain,
      host,
      port: options.port ?? 0,
      faults,
      classifyNumber: partnerClassifier(policy, faults),
      partnerUsers: [reflectorAccount, optoutAccount],
      gatekeeperUsers: [ineligibleAccount],
      components: [upload.component],
      log: options.log,
    });
  } catch (err) {
    await upload.stop();
    throw err;
  }
  const config = partnerEndpointConfig({ host: server.host, port: server.port, domain: server.domain, caCertPem: server.caCertPem, testPrefix: TEST_PREFIX, ineligible: ineligibleAccount, policy });
  let reflector;
  try {
    reflector = await startReflector({
      connection: { service: config.service, domain: config.domain, tls: config.tls, timeouts: config.timeouts },
      username: reflectorAccount.username,
      password: reflectorAccount.password,
      testPrefix: TEST_PREFIX,
      faults,
    });
  } catch (err) {
    await server.stop();
    await upload.stop();
    throw err;
  }
  return {
    config,
    caCertPem: server.caCertPem,
    async stop() {
      await reflector.stop().catch(() => undefined);
      await server.stop();
      await upload.stop();
    },
  };
}
