// Closed vocabularies for case files: an unknown value fails `chatconform lint`.

export const CASE_FORMAT_VERSION = 1;

export const AREAS = ["transport", "encryption", "media", "eligibility", "blocking", "privacy", "unsupported", "lifecycle"] as const;

export const TAGS = [
  "smoke", "handshake", "tls", "sasl", "iq", "errors", "omemo", "bundle", "devicelist", "session",
  "ratchet", "replay", "tamper", "prekey", "plaintext", "content", "receipt", "reflection", "hooks",
  "barrier", "multi-device", "identity", "ordering", "offline", "media", "eligibility", "blocking",
  "privacy", "unsupported", "lifecycle", "negative",
] as const;

/** Preconditions a case can declare; a missing one makes the case `not-tested`, never `pass`. */
export const NEEDS = [
  "registration", "reflector", "optout", "ineligible-account",
  "hook:reset", "hook:block", "hook:unblock", "hook:send", "hook:state", "hook:reconnect",
] as const;

export const HOOKS = ["reset", "block", "unblock", "send", "state", "reconnect"] as const;

export type Need = (typeof NEEDS)[number];
export type HookName = (typeof HOOKS)[number];
