// Known-bad partners: each mutant is the reference partner with one named fault, and declares
// exactly the requirements that fault breaks. `chatconform selftest` checks the declarations.
import type { PolicyName } from "../eligibility/classify.ts";
import { BLOCKING_MUTANTS } from "./mutants-blocking.ts";
import { PRIVACY_MUTANTS } from "./mutants-privacy.ts";

export interface Mutant {
  name: string;
  /** Where the fault lives: the partner server or the reflector (the partner's client). */
  side: "server" | "reflector";
  description: string;
  breaks: string[];
  /** The eligibility policy the selftest runs this mutant under (default: eea). */
  policy?: PolicyName;
}

const CORE_MUTANTS: readonly Mutant[] = [
  {
    name: "plaintext-accepted",
    side: "server",
    description: "the server delivers a plaintext <body> without OMEMO instead of refusing it",
    breaks: ["ENC-14"],
  },
  {
    name: "no-receipt-check",
    side: "reflector",
    description: "the reflector sends a receipt for messages it could not decrypt (a reused prekey, replays, tampered ciphertext, counter jumps)",
    breaks: ["ENC-09", "ENC-10", "ENC-11", "ENC-13"],
  },
  {
    name: "prekey-not-removed",
    side: "reflector",
    description: "the reflector never republishes its bundle, so a consumed one-time prekey stays published",
    breaks: ["ENC-08"],
  },
  // --- transport (server)
  { name: "no-starttls", side: "server", description: "STARTTLS is optional and authentication before TLS succeeds", breaks: ["TRN-01"] },
  { name: "plain-before-tls", side: "server", description: "PLAIN is offered in the stream features before TLS", breaks: ["TRN-02"] },
  { name: "unknown-iq-ignored", side: "server", description: "an IQ of an unknown namespace gets no answer at all", breaks: ["TRN-03"] },
  { name: "malformed-error", side: "server", description: "server error stanzas carry a second defined condition", breaks: ["TRN-04"] },
  { name: "out-of-order-delivery", side: "server", description: "messages that arrive together are routed in reverse order", breaks: ["TRN-05"] },
  { name: "offline-dropped", side: "server", description: "messages to a user without an available resource are dropped, not stored", breaks: ["TRN-06"] },
  // --- encryption (reflector)
  { name: "devicelist-private", side: "reflector", description: "the device list is published without access_model=open", breaks: ["ENC-01"] },
  { name: "bundle-few-prekeys", side: "reflector", description: "the bundle carries only 10 one-time prekeys", breaks: ["ENC-02", "ENC-03"] },
  { name: "bundle-50-prekeys", side: "reflector", description: "the bundle carries 50 one-time prekeys (fewer than the recommended 100)", breaks: ["ENC-03"] },
  { name: "bad-spk-signature", side: "reflector", description: "the published signed-prekey signature does not verify", breaks: ["ENC-04"] },
  { name: "duplicate-prekey-id", side: "reflector", description: "the bundle lists one prekey id twice", breaks: ["ENC-05"] },
  { name: "reflect-wrong-hash", side: "reflector", description: "reflections carry the hash of something other than the decrypted payload", breaks: ["ENC-06"] },
  { name: "missing-device-key", side: "reflector", description: "only the first device on the recipient's list gets a key", breaks: ["ENC-07", "ENC-17"] },
  { name: "extra-device-key", side: "reflector", description: "devices taken off the recipient's list still get a key", breaks: ["ENC-07"] },
  { name: "prekey-reuse-accepted", side: "reflector", description: "consumed one-time prekeys stay usable, so a second key exchange with one is accepted", breaks: ["ENC-09"] },
  { name: "replay-accepted", side: "reflector", description: "an exact replay of an accepted message is accepted again", breaks: ["ENC-10"] },
  { name: "session-reset-on-error", side: "reflector", description: "an undecryptable message makes the reflector start a new session", breaks: ["ENC-10", "ENC-11"] },
  { name: "out-of-order-drop", side: "reflector", description: "messages older than the newest one received are dropped", breaks: ["ENC-12"] },
  { name: "future-kills-session", side: "reflector", description: "a message too far in the future deletes the session", breaks: ["ENC-13"] },
  { name: "identity-change-silent", side: "reflector", description: "a changed identity key is never surfaced", breaks: ["ENC-16"] },
  { name: "no-eme-hints", side: "reflector", description: "partner messages lack the EME element and the store hint", breaks: ["ENC-15"] },
  {
    name: "plaintext-fallback-send",
    side: "reflector",
    description: "partner text messages carry the real text in <body>; a compliant server refuses them, so they never arrive",
    // Every case that waits for a partner text message sees nothing: that is what this fault does to users.
    breaks: ["TRN-06", "ENC-07", "ENC-15", "ENC-17", "ENC-18"],
  },
  { name: "content-invalid-send", side: "reflector", description: "partner documents lack sentAt and carry an id other than the stanza id", breaks: ["ENC-18"] },
  { name: "accepts-invalid-content", side: "reflector", description: "content that fails the schema or the id check is accepted", breaks: ["ENC-19"] },
  { name: "key-transport-receipt", side: "reflector", description: "empty key-transport messages get a receipt", breaks: ["ENC-20"] },
  // --- media
  { name: "media-tiny-limit", side: "server", description: "the upload service advertises and enforces 1 MiB", breaks: ["MED-01"] },
  { name: "upload-length-unchecked", side: "server", description: "the upload service stores a PUT whose Content-Length differs from the slot", breaks: ["MED-08"] },
  { name: "media-plaintext-upload", side: "reflector", description: "the partner uploads its media unencrypted", breaks: ["MED-04"] },
  { name: "media-wrong-hash", side: "reflector", description: "partner media documents carry a wrong sha256", breaks: ["MED-03"] },
  { name: "media-mime-lies", side: "reflector", description: "partner media documents declare a mime type the bytes are not", breaks: ["MED-03"] },
  { name: "media-no-mismatch-check", side: "reflector", description: "media whose declared type does not match its bytes is accepted", breaks: ["MED-06"] },
  { name: "media-integrity-ignored", side: "reflector", description: "media whose blob fails its tag, hash or size is accepted", breaks: ["MED-05"] },
  { name: "media-no-duration", side: "reflector", description: "partner voice notes and videos carry no durationMs", breaks: ["MED-09"] },
];

const ELIGIBILITY_MUTANTS: readonly Mutant[] = [
  {
    name: "eligibility-prefix-only",
    side: "server",
    description: "numbers are classified by their country calling code alone (the main region of the code), without number ranges or override rules",
    // Vatican on +39 06 698 becomes Italian: a row the policies decide differently.
    breaks: ["ELG-01", "ELG-02", "ELG-10"],
  },
  {
    name: "eligibility-ignores-overrides",
    side: "server",
    description: "numbers are classified by libphonenumber's region and the policy's region list, without the territory override rules",
    breaks: ["ELG-01"],
  },
  {
    name: "eligibility-policy-ignored",
    side: "server",
    description: "the server always applies the eea policy, whatever policy the endpoint is configured with",
    breaks: ["ELG-01", "ELG-10"],
    policy: "whatsapp-european-region",
  },
  {
    name: "eligibility-no-normalisation",
    side: "server",
    description: "only + followed by digits, spaces and dashes is understood: a number written with 00 or brackets is refused as unparsable",
    breaks: ["ELG-03"],
  },
  { name: "no-eligibility-check-on-message", side: "server", description: "messages from and to an ineligible gatekeeper account are delivered", breaks: ["ELG-05", "ELG-06"] },
  { name: "read-only-not-enforced", side: "server", description: "after a number change to an ineligible number, messages still flow both ways", breaks: ["ELG-08"] },
  { name: "history-lost-on-number-change", side: "reflector", description: "the partner deletes the history of a chat once it learns the chat became read-only", breaks: ["ELG-08"] },
  {
    name: "enumeration-leak",
    side: "server",
    description: "registration checks the username before eligibility, so an ineligible number gets conflict when the username exists",
    breaks: ["ELG-07"],
  },
];

export const MUTANTS: readonly Mutant[] = [...CORE_MUTANTS, ...ELIGIBILITY_MUTANTS, ...BLOCKING_MUTANTS, ...PRIVACY_MUTANTS];

export function findMutant(name: string): Mutant | undefined {
  return MUTANTS.find((m) => m.name === name);
}
