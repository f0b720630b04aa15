// The reference partner on a real XMPP server: Prosody with mod_tpc (the TPC/1 policy in Lua),
// its XEP-0363 upload component, and the TypeScript reflector as a client of it. The same endpoint
// config as the in-process partner (src/partner/index.ts), so the suite's verdicts compare 1:1.
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { EndpointConfig } from "../../config/config.ts";
import type { PolicyName } from "../../eligibility/classify.ts";
import { partnerAccounts, partnerEndpointConfig } from "../endpoint.ts";
import { findMutant } from "../mutants.ts";
import { startReflector } from "../reflector.ts";
import { generateCertificate } from "../tls.ts";
import { findProsody } from "./availability.ts";
import { prosodyConfig } from "./config.ts";
import { ELIGIBILITY_FAULT_MODES, eligibilityDataLua } from "./eligibility-data.ts";
import { ProsodyStartError, startProsodyProcess } from "./launcher.ts";
import type { ProsodyProcess } from "./launcher.ts";
import { CONFIG_FAULTS, MutantNotOnProsodyError, TPC_MODULE_FAULTS, whyNotOnProsody } from "./mutants.ts";

export { ProsodyNotInstalledError, prosodySkipReason } from "./availability.ts";
export { MutantNotOnProsodyError, PROSODY_MUTANTS, whyNotOnProsody } from "./mutants.ts";

export interface ProsodyPartnerOptions {
  mutant?: string;
  /** c2s port; 0 or absent picks a free one. */
  port?: number;
  host?: string;
  policy?: PolicyName;
  /** Test prefix of gatekeeper usernames (hooks are allowed to them only). */
  testPrefix: string;
  log?: (line: string) => void;
}

export interface ProsodyPartner {
  config: EndpointConfig;
  caCertPem: string;
  /** The temp dir with prosody.cfg.lua, the generated eligibility data and the uploads (removed by stop()). */
  dir: string;
  pid: number;
  stop(): Promise<void>;
}

/** A free TCP port on `host`, as the OS hands one out (the caller binds it right after). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startProsodyPartner(options: ProsodyPartnerOptions): Promise<ProsodyPartner> {
  findProsody(); // a clear error before anything is written
  const faults = new Set<string>();
  if (options.mutant) {
    const mutant = findMutant(options.mutant);
    if (!mutant) throw new Error(`unknown mutant "${options.mutant}"`);
    const why = whyNotOnProsody(mutant);
    if (why) throw new MutantNotOnProsodyError(mutant.name, why);
    faults.add(mutant.name);
  }
  const policy = options.policy ?? "eea";
  const domain = "partner.test";
  const host = options.host ?? "127.0.0.1";
  // CHATCONFORM_PROSODY_LOG=FILE keeps Prosody's and the reflector's log (the temp dir goes with the run).
  const logFile = process.env.CHATCONFORM_PROSODY_LOG;
  const log = (line: string) => {
    options.log?.(line);
    if (logFile) {
      try {
        appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
      } catch {
        // a log file that cannot be written is not worth failing a run for
      }
    }
  };
  const { reflector: reflectorAccount, optout: optoutAccount, ineligible: ineligibleAccount } = partnerAccounts(options.testPrefix);

  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-prosody-"));
  chmodSync(dir, 0o700);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const onExit = () => cleanup();
  process.on("exit", onExit);
  try {
    mkdirSync(path.join(dir, "data"), { mode: 0o700 });
    mkdirSync(path.join(dir, "certs"), { mode: 0o700 });
    const cert = await generateCertificate(domain);
    const certFile = path.join(dir, "certs", `${domain}.crt`);
    const keyFile = path.join(dir, "certs", `${domain}.key`);
    writeFileSync(certFile, cert.certPem);
    writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });
    const eligibility = [...faults].map((f) => ELIGIBILITY_FAULT_MODES[f]).find(Boolean) ?? {};
    const dataFile = path.join(dir, "tpc_eligibility_data.lua");
    writeFileSync(dataFile, eligibilityDataLua(eligibility.policy ?? policy, eligibility.mode ?? "real"));
    const configFaults = Object.assign({}, ...[...faults].map((f) => CONFIG_FAULTS[f] ?? {}));

    let prosody: ProsodyProcess | undefined;
    let c2sPort = 0;
    for (let attempt = 1; !prosody; attempt++) {
      c2sPort = options.port || (await freePort(host));
      const httpsPort = await freePort(host);
      const configFile = path.join(dir, "prosody.cfg.lua");
      writeFileSync(configFile, prosodyConfig({
        dir, domain, host, c2sPort, httpsPort, certFile, keyFile, dataFile,
        tpcFaults: [...faults].filter((f) => TPC_MODULE_FAULTS.has(f)),
        partnerUsers: [reflectorAccount, optoutAccount],
        gatekeeperUsers: [ineligibleAccount],
        faults: configFaults,
      }), { mode: 0o600 });
      try {
        prosody = await startProsodyProcess({ configFile, cwd: dir, c2s: { host, port: c2sPort }, https: { host, port: httpsPort }, log });
      } catch (err) {
        // Another process took a port between our probe and Prosody's bind: new ports, at most twice.
        if (!(err instanceof ProsodyStartError && err.portInUse && !options.port && attempt < 3)) throw err;
      }
    }
    const server = prosody;

    // Twice the in-process partner's waits for answers: a real server behind real sockets takes
    // about twice as long per reflected message, and a loaded CI machine must not turn that into
    // timeouts. A compliant run waits out none of them; only what a mutant never sends waits longer.
    const config = partnerEndpointConfig({ host, port: c2sPort, domain, caCertPem: cert.certPem, testPrefix: options.testPrefix, ineligible: ineligibleAccount, policy, answerWaitFactor: 2 });
    let reflector;
    try {
      reflector = await startReflector({
        connection: { service: config.service, domain, tls: config.tls, timeouts: config.timeouts },
        username: reflectorAccount.username,
        password: reflectorAccount.password,
        testPrefix: options.testPrefix,
        faults,
        log: (line) => log(`reflector: ${line}`),
      });
    } catch (err) {
      await server.stop();
      throw err;
    }
    let stopping: Promise<void> | undefined;
    return {
      config,
      caCertPem: cert.certPem,
      dir,
      pid: server.pid,
      stop() {
        stopping ??= (async () => {
          await reflector.stop().catch(() => undefined);
          await server.stop();
          process.off("exit", onExit);
          cleanup();
        })();
        return stopping;
      },
    };
  } catch (err) {
    process.off("exit", onExit);
    cleanup();
    throw err;
  }
}
