// serverprep web: the session, the fleet's one event stream, routing between the fleet and a server, messages.
import { el, setText } from "./text.js";
import { Fleet } from "./fleet.js";
import { ServerView } from "./server.js";

class ApiError extends Error {
  constructor(error, status) {
    super(error.message || "request failed");
    this.reason = error.reason || "HTTP_" + status;
    this.violations = error.violations || {};
    this.metadata = error.metadata || {};
    this.status = status;
  }
}

export const app = {
  csrf: "",
  steps: [],
  rows: new Map(),       // name -> row, as the gateway last sent it
  clockOffset: 0,        // gateway time minus browser time, in ms
  listeners: new Set(),  // called with the changed rows after every fleet event
  flushes: { count: 0, ms: 0, maxMs: 0 }, // batches applied to the fleet view, and the script time they took

  now() { return (Date.now() + this.clockOffset) / 1000; },

  async api(method, path, body) {
    const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = this.csrf;
      init.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError({ reason: "GATEWAY_UNREACHABLE", message: "the web gateway did not answer: " + e.message }, 0);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401) { location.href = "/login"; }
    if (!response.ok) {
      throw new ApiError((data && data.error) || { message: response.statusText }, response.status);
    }
    return data;
  },

  // A message in the page: the API's reason and message (and each field it refused), never an alert().
  message(kind, reason, text, violations) {
    const box = document.getElementById("messages");
    const m = el("div", "msg " + kind);
    m.setAttribute("role", kind === "error" ? "alert" : "status");
    if (reason) m.append(el("strong", "", reason));
    m.append(el("span", "text", text));
    for (const [field, why] of Object.entries(violations || {})) m.append(el("div", "violation", field + ": " + why));
    const close = el("button", "close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => m.remove());
    m.append(close);
    box.append(m);
    while (box.children.length > 5) box.firstChild.remove();
    if (kind !== "error") setTimeout(() => m.remove(), 6000);
    return m;
  },

  error(e) {
    if (e instanceof ApiError) this.message("error", e.reason, e.message, e.violations);
    else this.message("error", "ERROR", String(e && e.message || e));
  },
};

function gatewayStatus(g) {
  const conn = document.getElementById("conn");
  if (!g) return;
  if (g.reachable === false && g.error) {
    conn.className = "conn bad";
    setText(conn, "service: " + g.error.reason + ": " + g.error.message);
  } else {
    conn.className = "conn";
    setText(conn, g.servers + " servers · " + g.followed + " followed live");
  }
}

function connectFleet(fleet) {
  const source = new EventSource("/api/events");
  const conn = document.getElementById("conn");
  source.addEventListener("fleet", (ev) => {
    const data = JSON.parse(ev.data);
    app.clockOffset = data.now * 1000 - Date.now();
    app.steps = data.steps;
    app.rows = new Map(data.rows.map((r) => [r.name, r]));
    fleet.reset(data.steps, data.rows);
    gatewayStatus(data.gateway);
    for (const f of app.listeners) f(data.rows);
  });
  source.addEventListener("rows", (ev) => {
    const data = JSON.parse(ev.data);
    app.clockOffset = data.now * 1000 - Date.now();
    for (const r of data.rows) app.rows.set(r.name, r);
    for (const name of data.removed) app.rows.delete(name);
    fleet.update(data.rows, data.removed);
    gatewayStatus(data.gateway);
    for (const f of app.listeners) f(data.rows);
  });
  source.addEventListener("error", () => {
    conn.className = "conn bad";
    setText(conn, "reconnecting to the gateway…");
  });
  return source;
}

async function main() {
  try {
    const session = await app.api("GET", "/api/session");
    app.csrf = session.csrf;
    const logout = document.getElementById("logout");
    logout.hidden = !session.login;
    logout.addEventListener("click", async () => {
      try { await app.api("POST", "/logout"); } catch (e) { /* gone either way */ }
      location.href = "/login";
    });
  } catch (e) {
    app.error(e);
    return;
  }
  const fleet = new Fleet(app);
  const server = new ServerView(app);
  connectFleet(fleet);
  const route = () => {
    const m = location.hash.match(/^#\/server\/([^/]+)(?:\/([^/]+))?$/);
    const inServer = !!m;
    document.getElementById("fleet-view").hidden = inServer;
    document.getElementById("server-view").hidden = !inServer;
    if (inServer) server.open(decodeURIComponent(m[1]), m[2] ? decodeURIComponent(m[2]) : "");
    else server.close();
  };
  window.addEventListener("hashchange", route);
  route();
  window.serverprep = app; // for the browser tests' measurements
}

main();
