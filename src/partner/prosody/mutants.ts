// Which known-bad partners (src/partner/mutants*.ts) exist on the Prosody backend, and how each is
// made. Reflector faults live in the partner's client, the same TypeScript reflector on both
// backends, so they all exist here. Server faults exist where Prosody can be made to have them: a
// check of mod_tpc switched off, a configuration switch, or other eligibility data. Faults the
// in-process server fakes inside its own stream or routing code (e.g. reversing a chunk's messages)
// have no Prosody counterpart and are listed with the reason.
import { MUTANTS } from "../mutants.ts";
import type { Mutant } from "../mutants.ts";
import { ELIGIBILITY_FAULT_MODES } from "./eligibility-data.ts";
import type { ConfigFaults } from "./config.ts";

/** Faults mod_tpc implements (a policy check off, its registration order, or part of mod_blocklist's checks hidden). */
export const TPC_MODULE_FAULTS: ReadonlySet<string> = new Set([
  "block-ignored", "blocked-send-delivered", "block-leaks-receipt", "block-lost-on-reconnect", "block-by-device-not-jid",
  "gatekeeper-block-imported", "plaintext-accepted", "no-eligibility-check-on-message", "read-only-not-enforced", "enumeration-leak",
  "optout-enumerable", "group-invite-accepted", "groups-accepted", "jingle-accepted", "vcard-served",
  "avatar-served", "activity-served", "presence-leak", "disco-advertises-muc",
]);

/** Faults made by the configuration. */
export const CONFIG_FAULTS: Readonly<Record<string, ConfigFaults>> = {
  "no-starttls": { tlsOptional: true },
  "offline-dropped": { noOffline: true },
  "media-tiny-limit": { maxFileSize: 1024 * 1024 },
  // mod_tpc's activity check off, and mod_lastactivity answering for the user (it answers
  // forbidden to whoever is not subscribed, which is still not TPC/1's service-unavailable).
  "activity-served": { extraModules: ["lastactivity"] },
};

/** Server faults of the in-process partner that Prosody cannot be given, with the reason. */
export const NOT_ON_PROSODY: Readonly<Record<string, string>> = {
  "plain-before-tls": "Prosody offers no SASL mechanism before TLS while TLS is required",
  "unknown-iq-ignored": "Prosody's stanza router always answers an IQ nobody handles",
  "malformed-error": "Prosody builds its error stanzas in many modules",
  "out-of-order-delivery": "the fault lives in the in-process server's stream handling",
  "upload-length-unchecked": "mod_http_file_share always checks the Content-Length",
};

export function onProsody(mutant: Mutant): boolean {
  if (mutant.side === "reflector") return true;
  return TPC_MODULE_FAULTS.has(mutant.name) || mutant.name in CONFIG_FAULTS || mutant.name in ELIGIBILITY_FAULT_MODES;
}

/** The mutants that exist on the Prosody backend (and so on both). */
export const PROSODY_MUTANTS: readonly Mutant[] = MUTANTS.filter(onProsody);

/**
 * What `selftest --backend prosody` runs by default: the server-side mutants that exist on Prosody,
 * the ones whose fault Prosody itself carries. The reflector-side ones (the same TypeScript client
 * on both backends) run when named with --mutant.
 */
export const PROSODY_SERVER_MUTANTS: readonly Mutant[] = PROSODY_MUTANTS.filter((m) => m.side === "server");

/** The mutant exists in src/partner/mutants*.ts but not on Prosody. */
export class MutantNotOnProsodyError extends Error {
  constructor(name: string, reason: string) {
    super(`mutant "${name}" does not exist on the prosody backend: ${reason}`);
    this.name = "MutantNotOnProsodyError";
  }
}

/** Why a mutant does not exist on the Prosody backend, or undefined when it does. */
export function whyNotOnProsody(mutant: Mutant): string | undefined {
  if (onProsody(mutant)) return undefined;
  return NOT_ON_PROSODY[mutant.name] ?? "its fault has no Prosody counterpart";
}
