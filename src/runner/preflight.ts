// The first connection of a run, before any case: can the suite reach the endpoint, open an XMPP
// stream, establish TLS, and (with static accounts) log in? When it cannot, the run says so once, in
// plain words with the fix to try, and the cases that cannot run are skipped instead of each failing
// with the same error. Never throws.
import type { EndpointConfig } from "../config/config.ts";
import { ConnectionError, XmppConnection } from "../protocol/connection.ts";
import type { ConnectionOptions } from "../protocol/connection.ts";
import { NS } from "../protocol/xml.ts";
import { describeError } from "./stray.ts";

export interface PreflightFailure {
  /**
   * `all`: the endpoint cannot be reached, does not speak XMPP or TLS cannot be set up: no case can
   * run. `login`: logging in fails: cases with actors cannot run, negotiation probes still can.
   */
  scope: "all" | "login";
  /** What went wrong and what to try, in plain words; the run's incompleteReason. */
  message: string;
  /** The same, short: the reason given to each case that did not run. */
  short: string;
  error: ConnectionError;
}

function failure(scope: PreflightFailure["scope"], error: ConnectionError, service: string, what?: string): PreflightFailure {
  const detail = `${what ? `${what}: ` : ""}${error.message.replace(/\.$/, "")}`;
  return {
    scope,
    message: `First connection to ${service} failed: ${detail}.${error.hint ? ` Try: ${error.hint.replace(/\.$/, "")}.` : ""}`,
    short: `not run: the first connection to the endpoint failed (${detail})`,
    error,
  };
}

function asConnectionError(err: unknown): ConnectionError {
  return err instanceof ConnectionError ? err : new ConnectionError("internal", describeError(err));
}

/** Returns null when the endpoint is usable (or the run was interrupted meanwhile). */
export async function preflight(config: EndpointConfig, signal?: AbortSignal): Promise<PreflightFailure | null> {
  if (signal?.aborted) return null;
  let conn: XmppConnection | undefined;
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    conn?.destroy();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await check(config, (c) => {
      conn = c;
      if (aborted) c.destroy();
    });
  } catch (err) {
    return aborted ? null : failure("all", asConnectionError(err), config.service);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Polite close: the stream end goes out, the socket goes within a second whatever the endpoint does.
    void conn?.close().catch(() => undefined);
  }

  async function check(cfg: EndpointConfig, opened: (c: XmppConnection) => void): Promise<PreflightFailure | null> {
    const options: ConnectionOptions = {
      service: cfg.service, domain: cfg.domain, tls: cfg.tls, timeouts: cfg.timeouts,
      maxStanzaBytes: cfg.maxStanzaBytes, maxInboundBytesPerSecond: cfg.maxInboundBytesPerSecond,
    };
    let c: XmppConnection;
    try {
      c = await XmppConnection.open(options);
    } catch (err) {
      return aborted ? null : failure("all", asConnectionError(err), cfg.service);
    }
    opened(c);
    if (!c.secure) {
      // No STARTTLS is a finding of the transport cases (TRN-01), not a reason to skip them.
      if (!c.hasFeature("starttls", NS.tls)) return null;
      try {
        await c.startTls();
      } catch (err) {
        return aborted ? null : failure("all", asConnectionError(err), cfg.service);
      }
    }
    const account = cfg.accounts.mode === "static" ? cfg.accounts.static[0] : undefined;
    if (!account) return null;
    try {
      await c.authenticate(account.username, account.password);
      await c.bind(`chatconform-preflight`);
    } catch (err) {
      if (aborted) return null;
      const error = asConnectionError(err);
      const hinted = error.kind === "auth" && /not-authorized/.test(error.message)
        ? new ConnectionError("auth", error.message, "check the username and password of accounts.static in the config")
        : error;
      return failure("login", hinted, cfg.service, `logging in as accounts.static[0] (${account.username})`);
    }
    return null;
  }
}
