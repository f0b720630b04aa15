// Server faults (known-bad partners) outside the TPC/1 policy checks: each is a named switch in the
// one code path it breaks. The policy checks have a fault each (policy.ts), and SERVER_FAULTS there
// lists both kinds. Names the server does not know (e.g. reflector faults) are ignored.
// This module imports nothing, so that every part of the server can ask for a fault.

/** Faults outside the policy checks, each with one sentence on what the server then does. */
export const TRANSPORT_FAULTS = {
  "no-starttls":
    "STARTTLS is offered without <required/>; before TLS the features already offer SCRAM-SHA-1 (not PLAIN) and registration, and authentication (SCRAM, or PLAIN if a client sends it) and registration succeed in the clear.",
  "plain-before-tls":
    "the first stream features offer PLAIN and SCRAM-SHA-1 beside the required STARTTLS, though authentication before TLS is still refused with encryption-required.",
  "unknown-iq-ignored":
    "an IQ get or set whose payload the server does not understand (to the server, to the sender's own or to another user's bare JID) gets no answer at all instead of service-unavailable.",
  "malformed-error":
    "every error stanza the server generates carries a second defined condition, <undefined-condition/>, right after the real one.",
  "offline-dropped":
    "a message to an existing account without an available resource is silently dropped instead of stored for offline delivery.",
  "out-of-order-delivery":
    "messages that arrive in one chunk of bytes read from a client's socket are routed in reverse order once the chunk's other elements are handled (a single message, or messages in different chunks, keep their order).",
  "enumeration-leak":
    "registration looks up the username before it checks eligibility, so an ineligible number gets conflict when the username exists and not-allowed when it does not.",
  "disco-advertises-muc":
    "disco#info on a user's bare JID also lists MUC, a feature TPC/1 refuses between gatekeeper and partner users.",
  "block-lost-on-reconnect":
    "a block list item lives with the session that set it, like an XEP-0016 active list, and lapses when that session ends, so a user's blocks are gone once it reconnects.",
  "block-by-device-not-jid":
    "blocking a user's bare JID blocks the full JIDs of the resources it has bound at that moment instead, so its new devices and everything addressed to its bare JID get through.",
  "gatekeeper-block-imported":
    "when a gatekeeper user blocks a partner user, the server also adds the gatekeeper user to that partner user's own block list, where it stays after the gatekeeper user unblocks.",
} as const;

export type TransportFault = keyof typeof TRANSPORT_FAULTS;

/** Whether a transport fault is switched on (typed, so that a misspelt name does not compile). */
export function hasFault(ctx: { readonly faults: ReadonlySet<string> }, fault: TransportFault): boolean {
  return ctx.faults.has(fault);
}
