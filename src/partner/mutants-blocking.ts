// Known-bad partners for blocking (TPC/1 §10, BLK). Each declares exactly the requirements its fault
// breaks, as the blocking catalogue measures them: a case checks the block works before it checks
// what it is about, so a fault that breaks the block itself fails there (BLK-01, BLK-04) and leaves
// the later requirement of that case not tested rather than failed.
import type { Mutant } from "./mutants.ts";

export const BLOCKING_MUTANTS: readonly Mutant[] = [
  {
    name: "block-ignored",
    side: "server",
    description: "the server never applies a user's block list to what others send it: messages and IQs from a blocked gatekeeper user go through",
    breaks: ["BLK-01", "BLK-03"],
  },
  {
    name: "blocked-send-delivered",
    side: "server",
    description: "the partner user's own messages and IQs to a gatekeeper user it blocks are delivered instead of failing with <blocked/>",
    breaks: ["BLK-04"],
  },
  {
    name: "block-leaks-receipt",
    side: "server",
    description: "the outbound block covers only messages with content: a receipt (or chat marker or chat state) still reaches the blocked gatekeeper user",
    breaks: ["BLK-02"],
  },
  {
    name: "block-lost-on-reconnect",
    side: "server",
    description: "block list items live with the session that set them and are gone once the partner user reconnects",
    breaks: ["BLK-05"],
  },
  {
    name: "block-by-device-not-jid",
    side: "server",
    description: "a block stands for the full JIDs of the devices the gatekeeper user had bound, so a new device, and whatever the partner user sends to the bare JID, get through",
    // The partner user's sends go to the bare JID: they reach the blocked user too.
    breaks: ["BLK-04", "BLK-06"],
  },
  {
    name: "unblock-local-only",
    side: "reflector",
    description: "the partner's client takes the contact off its own list on unblock but never tells the server, so the block stays in force",
    breaks: ["BLK-07"],
  },
  {
    name: "gatekeeper-block-imported",
    side: "server",
    description: "a block a gatekeeper user sets on a partner user is copied into the partner user's own block list, and stays there after the gatekeeper user unblocks",
    breaks: ["BLK-09"],
  },
];
