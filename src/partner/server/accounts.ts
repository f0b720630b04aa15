// Accounts of the reference partner server: gatekeeper actors (G, registered with a phone number)
// and partner users (P, pre-provisioned). Passwords are never stored, only SCRAM credentials.
import type { ScramCredentials } from "../../protocol/scram.ts";
import type { Element } from "../../protocol/xml.ts";

export type AccountKind = "gatekeeper" | "partner";

/**
 * Where a G account stands under the eligibility policy:
 * - eligible: its number is in the policy's region set;
 * - ineligible: provisioned statically with a number outside the set (messages refused with ineligible-region);
 * - read-only: its number changed to one outside the set (messages refused with read-only; history kept).
 */
export type Standing = "eligible" | "ineligible" | "read-only";

export interface PepNode {
  accessModel: string;
  /** Items by id, oldest first; a republished id moves to the end. */
  items: Map<string, Element>;
}

export interface Account {
  readonly username: string;
  readonly kind: AccountKind;
  readonly credentials: ScramCredentials;
  /** Partner users only: has not enabled third-party chats; G must not be able to tell it exists. */
  readonly optedOut: boolean;
  /** Gatekeeper actors only: E.164 number and its region. */
  phone?: string;
  region?: string;
  standing: Standing;
  /** The classifier's reason for the current standing (used as error <text>). */
  standingReason: string;
  /** XEP-0191 block list: bare JIDs, full JIDs or domains, normalised. Kept across reconnects. */
  readonly blocklist: Set<string>;
  /** XEP-0163 PEP nodes by node name. */
  readonly pep: Map<string, PepNode>;
  /** Messages stored while no resource was available, in arrival order. */
  readonly offline: Element[];
  /** The user's vcard-temp (XEP-0054), as the user last set it. */
  vcard?: Element;
}

export interface AccountSummary {
  username: string;
  kind: AccountKind;
  phone?: string;
  region?: string;
  standing?: Standing;
  readOnly: boolean;
  optedOut: boolean;
}

export interface NewAccount {
  username: string;
  kind: AccountKind;
  credentials: ScramCredentials;
  optedOut?: boolean;
  phone?: string;
  region?: string;
  standing?: Standing;
  standingReason?: string;
}

export class AccountStore {
  private readonly byName = new Map<string, Account>();

  get(username: string): Account | undefined {
    return this.byName.get(username.toLowerCase());
  }

  has(username: string): boolean {
    return this.byName.has(username.toLowerCase());
  }

  add(fields: NewAccount): Account {
    const username = fields.username.toLowerCase();
    if (this.byName.has(username)) throw new Error(`account ${username} exists already`);
    const account: Account = {
      username,
      kind: fields.kind,
      credentials: fields.credentials,
      optedOut: fields.optedOut ?? false,
      phone: fields.phone,
      region: fields.region,
      standing: fields.standing ?? "eligible",
      standingReason: fields.standingReason ?? "",
      blocklist: new Set(),
      pep: new Map(),
      offline: [],
    };
    this.byName.set(username, account);
    return account;
  }

  list(): AccountSummary[] {
    return [...this.byName.values()].map((a) => ({
      username: a.username,
      kind: a.kind,
      ...(a.phone !== undefined ? { phone: a.phone } : {}),
      ...(a.region !== undefined ? { region: a.region } : {}),
      ...(a.kind === "gatekeeper" ? { standing: a.standing } : {}),
      readOnly: a.standing === "read-only",
      optedOut: a.optedOut,
    }));
  }
}
