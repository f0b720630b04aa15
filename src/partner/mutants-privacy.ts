// Known-bad partners for privacy, opt-in and unsupported features (TPC/1 §7, §10): each declares
// exactly the requirements its fault breaks, as `chatconform selftest` measures them.
import type { Mutant } from "./mutants.ts";

export const PRIVACY_MUTANTS: readonly Mutant[] = [
  // --- privacy
  { name: "nick-leak", side: "reflector", description: "partner messages carry the user's nick (XEP-0172)", breaks: ["PRV-01"] },
  { name: "vcard-served", side: "server", description: "the server answers vcard-temp and vCard4 queries about partner users with their vCard", breaks: ["PRV-01", "PRV-02"] },
  { name: "avatar-served", side: "server", description: "partner users' avatar and nick PEP nodes are readable by gatekeeper users", breaks: ["PRV-02"] },
  { name: "activity-served", side: "server", description: "the server tells gatekeeper users a partner user's last activity (seconds idle) instead of refusing with forbidden", breaks: ["PRV-02"] },
  { name: "presence-leak", side: "server", description: "presence crosses between gatekeeper and partner users", breaks: ["PRV-01", "PRV-04"] },
  // --- opt-in
  { name: "optout-enumerable", side: "server", description: "an opted-out partner user behaves like any other account, so a gatekeeper user can tell it exists", breaks: ["LIF-01"] },
  // --- unsupported features
  { name: "sticker-silently-dropped", side: "reflector", description: "a sticker is dropped without an error", breaks: ["UNS-01"] },
  { name: "ephemeral-ignored", side: "reflector", description: "expiresAfterS is ignored: a disappearing message is accepted and kept", breaks: ["UNS-04"] },
  { name: "group-invite-accepted", side: "server", description: "direct and mediated MUC invitations are delivered to partner users", breaks: ["UNS-06"] },
  { name: "groups-accepted", side: "server", description: "groupchat messages, MUC joins and MIX requests pass to partner users", breaks: ["UNS-05", "UNS-07", "UNS-12"] },
  { name: "jingle-accepted", side: "server", description: "Jingle and Jingle Message Initiation reach the partner user's device, which accepts the call", breaks: ["UNS-08", "UNS-09", "UNS-11"] },
  { name: "disco-advertises-muc", side: "server", description: "disco#info on partner users lists MUC", breaks: ["UNS-10"] },
];
