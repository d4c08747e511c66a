// Tokenkeeper from JavaScript: every HTTP route in order, with Node 20's built-in fetch (no dependencies).
//
//   TOKENKEEPER_URL=http://127.0.0.1:8080 node examples/js/tokenkeeper.mjs
//
// Each step checks the status code and the key fields of the answer and prints one line; on any mismatch it
// prints what it expected and what it got, and exits 1. CI runs it against a live service
// (scripts/examples.sh).

const B = (process.env.TOKENKEEPER_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");

const email = `js-example-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
const password = "correct horse battery";
const newPassword = "another good one";
const apiKey = "glsa_exampleExampleExample_0123abcd";
const baseUrl = "https://example.grafana.net";
let token; // the Bearer session token from login
let orgId; // the shared org the example creates
let memberId; // the second user, added to it
const memberEmail = email.replace("js-example-", "js-member-");

class Mismatch extends Error {}

function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}

// The answer's JSON, once its status is the expected one.
async function expectJson(res, status) {
  const text = await res.text();
  check(res.status === status, `expected HTTP ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Mismatch(`expected a JSON body, got: ${text.slice(0, 500)}`);
  }
}

async function expectEmpty(res, status) {
  const text = await res.text();
  check(res.status === status, `expected HTTP ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  check(text === "", `expected an empty body, got: ${text.slice(0, 500)}`);
}

// A login answer for a failure message: the session token itself is never printed.
function withoutToken(session) {
  return JSON.stringify({ ...session, token: session.token ? "<redacted>" : session.token });
}

function checkConnection(c) {
  // First, so that the messages below may show the connection.
  check(!JSON.stringify(c).includes(apiKey), "the connection view must not contain the secret api_key");
  check(c.provider === "grafana", `provider should be "grafana": ${JSON.stringify(c)}`);
  check(c.metadata?.base_url === baseUrl, `metadata.base_url should be ${baseUrl}: ${JSON.stringify(c)}`);
  // "active" once Grafana accepted the key; "unchecked" where the deployment stores without asking the
  // provider (TOKENKEEPER_CHECK_ON_STORE=false, as in this example's offline run).
  check(["active", "unchecked"].includes(c.status), `status should be "active" or "unchecked": ${JSON.stringify(c)}`);
}

const steps = [
  ["POST /api/auth/register", async () => {
    const res = await fetch(`${B}/api/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password, name: "Ada" }),
    });
    const user = await expectJson(res, 201);
    check(user.email === email && user.name === "Ada" && user.id, `unexpected user: ${JSON.stringify(user)}`);
    return `user ${user.id}`;
  }],

  ["POST /api/auth/login", async () => {
    const res = await fetch(`${B}/api/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    const session = await expectJson(res, 200);
    check(session.token?.startsWith("tks_"), `token should start with tks_: ${withoutToken(session)}`);
    check(session.email === email && session.expiresAt, `unexpected login answer: ${withoutToken(session)}`);
    token = session.token;
    return `session until ${session.expiresAt}`;
  }],

  ["GET /api/auth/me", async () => {
    const res = await fetch(`${B}/api/auth/me`, { headers: { Authorization: `Bearer ${token}` } });
    const me = await expectJson(res, 200);
    check(me.email === email, `email should be ${email}: ${JSON.stringify(me)}`);
    check(me.passwordChangedAt === null, `passwordChangedAt should be null: ${JSON.stringify(me)}`);
    return me.email;
  }],

  ["POST /api/auth/change-password", async () => {
    const res = await fetch(`${B}/api/auth/change-password`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ currentPassword: password, newPassword }),
    });
    const body = await expectJson(res, 200);
    check(body.message === "Password changed successfully", `unexpected answer: ${JSON.stringify(body)}`);
    return body.message;
  }],

  ["POST /api/auth/login (new password)", async () => {
    const res = await fetch(`${B}/api/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password: newPassword }),
    });
    const session = await expectJson(res, 200);
    check(session.token?.startsWith("tks_"), `token should start with tks_: ${withoutToken(session)}`);
    token = session.token;
    return "logged in with the new password";
  }],

  ["GET /api/providers", async () => {
    const res = await fetch(`${B}/api/providers`);
    const { providers } = await expectJson(res, 200);
    const grafana = providers?.find((p) => p.id === "grafana");
    check(grafana, "grafana should be in the catalog");
    check(grafana.refresh === "static", `grafana should refresh "static": ${grafana.refresh}`);
    const key = grafana.fields.find((f) => f.name === "api_key");
    check(key?.secret === true && key.required === true, "grafana's api_key should be secret and required");
    return `${providers.length} providers`;
  }],

  ["PUT /api/tokens/grafana", async () => {
    const res = await fetch(`${B}/api/tokens/grafana`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: apiKey, base_url: baseUrl }),
    });
    const conn = await expectJson(res, 200);
    checkConnection(conn);
    check(conn.secretVersion === 1, `secretVersion should be 1: ${conn.secretVersion}`);
    return `stored at ${conn.secretRef}`;
  }],

  ["GET /api/tokens", async () => {
    const res = await fetch(`${B}/api/tokens`, { headers: { Authorization: `Bearer ${token}` } });
    const { connections } = await expectJson(res, 200);
    check(connections?.length === 1, `expected one connection: ${JSON.stringify(connections)}`);
    checkConnection(connections[0]);
    return `${connections.length} connection`;
  }],

  ["GET /api/tokens/grafana", async () => {
    const res = await fetch(`${B}/api/tokens/grafana`, { headers: { Authorization: `Bearer ${token}` } });
    const conn = await expectJson(res, 200);
    checkConnection(conn);
    return `status ${conn.status}`;
  }],

  ["GET /api/tokens/grafana/credentials", async () => {
    const res = await fetch(`${B}/api/tokens/grafana/credentials`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const { provider, tokenData } = await expectJson(res, 200);
    check(res.headers.get("cache-control") === "no-store",
      `Cache-Control should be no-store, got ${res.headers.get("cache-control")}`);
    check(provider === "grafana", `provider should be grafana: ${provider}`);
    check(tokenData?.api_key === apiKey, "tokenData.api_key should be the stored key");
    check(tokenData.base_url === baseUrl, `tokenData.base_url should be ${baseUrl}: ${tokenData.base_url}`);
    return "api_key round-trips, Cache-Control: no-store";
  }],

  ["POST /api/tokens/grafana/refresh", async () => {
    const res = await fetch(`${B}/api/tokens/grafana/refresh`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    const conn = await expectJson(res, 200);
    checkConnection(conn); // static provider: answered as it is
    return `status ${conn.status}`;
  }],

  ["GET /api/audit", async () => {
    const res = await fetch(`${B}/api/audit?limit=50`, { headers: { Authorization: `Bearer ${token}` } });
    const { events } = await expectJson(res, 200);
    const kinds = events.map((e) => e.kind);
    for (const kind of ["register", "login", "change_password", "credential_store", "credential_read"]) {
      check(kinds.includes(kind), `audit should hold a ${kind} event: ${kinds.join(", ")}`);
    }
    check(events.every((e, i) => i === 0 || events[i - 1].id > e.id), "events should be newest first");
    return `${events.length} events, newest ${events[0].kind}`;
  }],

  ["DELETE /api/tokens/grafana", async () => {
    const res = await fetch(`${B}/api/tokens/grafana`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${token}` },
    });
    const { revoked } = await expectJson(res, 200);
    // Grafana keys have no revocation at the provider: null (gcp and slack grants: true or false).
    check(revoked === null, `revoked should be null for grafana: ${revoked}`);
    return "deleted";
  }],

  ["GET /api/tokens/grafana (deleted)", async () => {
    const res = await fetch(`${B}/api/tokens/grafana`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await expectJson(res, 404);
    check(typeof body.error === "string" && body.error, `expected {"error": ...}: ${JSON.stringify(body)}`);
    return body.error;
  }],

  ["PUT /api/tokens/grafana?name=staging", async () => {
    // Several connections per provider: each named one has its own id and secret.
    const res = await fetch(`${B}/api/tokens/grafana?name=staging`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: apiKey, base_url: baseUrl }),
    });
    const conn = await expectJson(res, 200);
    checkConnection(conn);
    check(conn.name === "staging", `name should be "staging": ${conn.name}`);
    check(/^[0-9a-f]{32}$/.test(conn.id), `id should be 32 hex digits: ${conn.id}`);
    check(conn.secretRef.endsWith("-grafana-staging-token"), `its own secret: ${conn.secretRef}`);
    return `stored at ${conn.secretRef}`;
  }],

  ["GET /api/tokens/grafana/credentials?name=staging", async () => {
    const res = await fetch(`${B}/api/tokens/grafana/credentials?name=staging`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const { name, tokenData } = await expectJson(res, 200);
    check(name === "staging" && tokenData?.api_key === apiKey, `the staging connection's key: ${name}`);
    const bad = await fetch(`${B}/api/tokens/grafana?name=Staging`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await expectJson(bad, 400);
    return `a bad name: ${body.error}`;
  }],

  ["DELETE /api/tokens/grafana?name=staging", async () => {
    const res = await fetch(`${B}/api/tokens/grafana?name=staging`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${token}` },
    });
    const { revoked } = await expectJson(res, 200);
    // Grafana keys have no revocation at the provider: null (gcp and slack grants: true or false).
    check(revoked === null, `revoked should be null for grafana: ${revoked}`);
    return "deleted";
  }],

  ["POST /api/connect/slack", async () => {
    // The "Connect Slack" button: the browser is sent to authorizationUrl, and comes back to returnUrl with
    // ?connected=slack&name=default once the user agreed on Slack's page.
    const res = await fetch(`${B}/api/connect/slack`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ returnUrl: `${B}/settings` }),
    });
    if (res.status === 400) {
      const { error } = await res.json();
      check(error.includes("TOKENKEEPER_SLACK_CLIENT_ID"), `unexpected 400: ${error}`);
      return `this service has no Slack app: ${error}`;
    }
    const { authorizationUrl, expiresAt } = await expectJson(res, 200);
    const url = new URL(authorizationUrl);
    check(url.origin === "https://slack.com", `Slack's consent page: ${authorizationUrl}`);
    check(url.searchParams.get("redirect_uri") === `${B}/api/connect/callback`, `the callback: ${authorizationUrl}`);
    check(url.searchParams.get("state") && url.searchParams.get("code_challenge_method") === "S256", "state and PKCE");
    return `consent at ${url.origin}${url.pathname} until ${expiresAt}`;
  }],

  ["GET /api/orgs", async () => {
    const { orgs } = await expectJson(await fetch(`${B}/api/orgs`, { headers: { Authorization: `Bearer ${token}` } }), 200);
    check(orgs.length === 1 && orgs[0].personal && orgs[0].role === "admin", `one personal org: ${JSON.stringify(orgs)}`);
    return `personal org ${orgs[0].id}`;
  }],

  ["POST /api/orgs", async () => {
    const res = await fetch(`${B}/api/orgs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Platform team" }),
    });
    const org = await expectJson(res, 201);
    check(org.role === "admin" && !org.personal, `the creator is admin: ${JSON.stringify(org)}`);
    orgId = org.id;
    return orgId;
  }],

  ["PUT /api/tokens/grafana (X-Org-ID)", async () => {
    const res = await fetch(`${B}/api/tokens/grafana`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "X-Org-ID": orgId, "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: apiKey, base_url: baseUrl }),
    });
    checkConnection(await expectJson(res, 200));
    const list = await expectJson(
      await fetch(`${B}/api/tokens`, { headers: { Authorization: `Bearer ${token}`, "X-Org-ID": orgId } }), 200);
    check(list.connections.length === 1, `one connection in the org: ${JSON.stringify(list)}`);
    return "stored in the org";
  }],

  ["POST /api/orgs/{org}/members", async () => {
    const reg = await fetch(`${B}/api/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: memberEmail, password, name: "Bob" }),
    });
    memberId = (await expectJson(reg, 201)).id;
    const res = await fetch(`${B}/api/orgs/${orgId}/members`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ email: memberEmail, role: "viewer" }),
    });
    const member = await expectJson(res, 201);
    check(member.userId === memberId && member.role === "viewer", `the new member: ${JSON.stringify(member)}`);
    return `${memberEmail} is a viewer`;
  }],

  ["PATCH /api/orgs/{org}/members/{user}", async () => {
    const res = await fetch(`${B}/api/orgs/${orgId}/members/${memberId}`, {
      method: "PATCH",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ role: "editor" }),
    });
    const member = await expectJson(res, 200);
    check(member.role === "editor", `the new role: ${JSON.stringify(member)}`);
    return "now an editor";
  }],

  ["GET /api/orgs/{org}/members", async () => {
    const res = await fetch(`${B}/api/orgs/${orgId}/members`, { headers: { Authorization: `Bearer ${token}` } });
    const { members } = await expectJson(res, 200);
    check(members.length === 2, `two members: ${JSON.stringify(members)}`);
    return members.map((m) => `${m.email} (${m.role})`).join(", ");
  }],

  ["DELETE /api/orgs/{org}/members/{user}", async () => {
    const res = await fetch(`${B}/api/orgs/${orgId}/members/${memberId}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${token}` },
    });
    await expectEmpty(res, 204);
    return "removed";
  }],

  ["POST /api/auth/logout", async () => {
    const res = await fetch(`${B}/api/auth/logout`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    await expectEmpty(res, 204);
    const after = await fetch(`${B}/api/auth/me`, { headers: { Authorization: `Bearer ${token}` } });
    await expectJson(after, 401);
    return "the session is refused afterwards";
  }],

  ["GET /healthz", async () => {
    const res = await fetch(`${B}/healthz`);
    const body = await expectJson(res, 200);
    check(body.status === "ok", `status should be "ok": ${JSON.stringify(body)}`);
    return body.status;
  }],

  ["GET /readyz", async () => {
    const res = await fetch(`${B}/readyz`);
    const body = await expectJson(res, 200);
    check(body.status === "ready", `status should be "ready": ${JSON.stringify(body)}`);
    return body.status;
  }],

  ["GET /metrics", async () => {
    const res = await fetch(`${B}/metrics`);
    check(res.status === 200, `expected 200, got ${res.status}`);
    const metrics = await res.text();
    const line = metrics.split("\n").find((l) => l.startsWith("tokenkeeper_http_requests_total{"));
    check(line !== undefined, "no tokenkeeper_http_requests_total series");
    return "Prometheus text with request counters";
  }],

  ["GET /openapi.json", async () => {
    const doc = await expectJson(await fetch(`${B}/openapi.json`), 200);
    const paths = Object.keys(doc.paths);
    check(paths.includes("/api/tokens/{provider}/credentials"), `paths: ${paths}`);
    return `OpenAPI ${doc.openapi}, ${paths.length} paths`;
  }],
];

console.log(`Tokenkeeper JavaScript example against ${B}`);
for (const [name, run] of steps) {
  try {
    const note = await run();
    console.log(`ok    ${name}: ${note}`);
  } catch (e) {
    const why = e instanceof Mismatch ? e.message : `request failed: ${e.cause?.message ?? e.message}`;
    console.error(`FAIL  ${name}: ${why}`);
    process.exit(1);
  }
}
console.log(`all ${steps.length} steps passed`);
