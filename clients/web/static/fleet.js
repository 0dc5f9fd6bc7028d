// The fleet: a row of step cells per server, updated in batches (one DOM pass per animation frame).
import { el, setText, duration } from "./text.js";

const STATES = ["RUNNING", "PENDING", "FAILED", "CANCELLED", "SUCCEEDED", "NONE"];
const LABELS = { ALL: "All", RUNNING: "Running", PENDING: "Pending", FAILED: "Failed", CANCELLED: "Cancelled",
  SUCCEEDED: "Succeeded", NONE: "Not prepared" };
const SYMBOLS = { SUCCEEDED: "✓", SKIPPED: "↷", FAILED: "✗", CANCELLED: "⊘", PENDING: "", RUNNING: "", NONE: "" };
const SHORT = { detect_os: "os", update_packages: "update", install_dependencies: "deps", install_docker: "docker",
  start_docker: "start", configure_user: "user", verify_docker: "verify" };

export class Fleet {
  constructor(app) {
    this.app = app;
    this.table = document.getElementById("fleet");
    this.body = document.getElementById("fleet-rows");
    this.elements = new Map(); // name -> {tr, cells[], os, state, reason, elapsed, row}
    this.pending = new Map();  // rows waiting for the next frame
    this.removed = new Set();
    this.frame = 0;
    this.filter = "ALL";
    this.search = "";
    this.steps = [];
    this.counts = {};
    this.buildCounts();
    this.body.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) return;
      const tr = ev.target.closest(".frow");
      if (tr) location.hash = "#/server/" + encodeURIComponent(tr.dataset.name);
    });
    document.getElementById("search").addEventListener("input", (ev) => {
      this.search = ev.target.value.trim().toLowerCase();
      this.applySearch();
    });
    setInterval(() => this.tick(), 1000);
  }

  buildCounts() {
    const nav = document.getElementById("counts");
    this.countEls = {};
    for (const state of ["ALL", ...STATES]) {
      const b = el("button", "count c-" + state);
      b.type = "button";
      b.dataset.state = state;
      b.setAttribute("aria-pressed", state === "ALL" ? "true" : "false");
      if (state !== "ALL") { const dot = el("span", "dot"); dot.classList.add("d-" + state); b.append(dot); }
      b.append(el("span", "label", LABELS[state]));
      const n = el("span", "n", "0");
      b.append(n);
      this.countEls[state] = n;
      b.addEventListener("click", () => this.setFilter(state));
      nav.append(b);
    }
  }

  setFilter(state) {
    this.filter = state;
    this.table.dataset.filter = state;
    for (const b of document.querySelectorAll("#counts button")) b.setAttribute("aria-pressed", String(b.dataset.state === state));
  }

  reset(steps, rows) {
    const started = performance.now();
    this.steps = steps;
    const head = document.getElementById("fleet-head");
    for (const th of head.querySelectorAll(".step")) th.remove();
    const before = head.querySelector(".state");
    for (const name of steps) {
      const th = el("span", "step", SHORT[name] || name);
      th.setAttribute("role", "columnheader");
      th.title = name;
      head.insertBefore(th, before);
    }
    this.table.style.setProperty("--steps", String(steps.length));
    this.body.textContent = "";
    this.elements.clear();
    this.pending.clear();
    this.removed.clear();
    const fragment = document.createDocumentFragment();
    for (const row of rows) fragment.append(this.create(row));
    this.body.append(fragment);
    this.afterChange();
    const app = this.app;
    if (!app.firstRender) {
      app.firstRender = { rows: rows.length, sinceNavigation: performance.now(), buildMs: performance.now() - started };
      performance.mark("fleet-rendered");
    }
  }

  update(rows, removed) {
    for (const r of rows) this.pending.set(r.name, r);
    for (const name of removed) { this.pending.delete(name); this.removed.add(name); }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    const began = performance.now();
    this.frame = 0;
    const created = [];
    for (const name of this.removed) {
      const e = this.elements.get(name);
      if (e) { e.tr.remove(); this.elements.delete(name); }
    }
    this.removed.clear();
    for (const row of this.pending.values()) {
      const e = this.elements.get(row.name);
      if (e) this.fill(e, row);
      else created.push(this.create(row));
    }
    this.pending.clear();
    for (const tr of created) this.insertSorted(tr);
    this.afterChange();
    // How long the page spends applying a batch (script only; the browser then lays out what changed).
    this.app.flushes.count++;
    this.app.flushes.ms += performance.now() - began;
    this.app.flushes.maxMs = Math.max(this.app.flushes.maxMs, performance.now() - began);
  }

  insertSorted(tr) {
    // Rows stay in name order, as the gateway sends them; new servers are rare, so a linear scan is enough.
    const name = tr.dataset.name;
    for (const other of this.body.children) {
      if (other.dataset.name > name) { this.body.insertBefore(tr, other); return; }
    }
    this.body.append(tr);
  }

  create(row) {
    const tr = el("div", "frow");
    tr.setAttribute("role", "row");
    tr.dataset.name = row.name;
    const name = el("span", "name");
    const a = el("a", "", row.name);
    a.href = "#/server/" + encodeURIComponent(row.name);
    name.append(a, el("span", "host", row.host));
    const os = el("span", "os");
    tr.append(name, os);
    const cells = [];
    for (let i = 0; i < this.steps.length; i++) {
      const td = el("span", "cell");
      td.append(el("i"));
      cells.push(td);
      tr.append(td);
    }
    const state = el("span", "state");
    const label = el("span", "state-label");
    const reason = el("span", "reason");
    state.append(label, reason);
    const elapsed = el("span", "elapsed");
    tr.append(state, elapsed);
    for (const c of tr.children) c.setAttribute("role", "cell");
    const e = { tr, cells, os, label, reason, elapsed, host: name.lastChild, row: null };
    this.elements.set(row.name, e);
    this.fill(e, row);
    return tr;
  }

  fill(e, row) {
    const old = e.row;
    e.row = row;
    if (!old || old.state !== row.state) {
      e.tr.dataset.state = row.state;
      e.label.className = "state-label p-" + row.state;
      setText(e.label, row.state === "NONE" ? "not prepared" : row.state.toLowerCase());
    }
    if (!old || old.os !== row.os) { setText(e.os, row.os); e.os.title = row.os; }
    if (!old || old.host !== row.host) setText(e.host, row.host);
    const reason = row.failure ? row.failure.reason : "";
    if (!old || (old.failure ? old.failure.reason : "") !== reason) {
      setText(e.reason, reason);
      e.reason.title = row.failure ? row.failure.message : "";
    }
    for (let i = 0; i < e.cells.length; i++) {
      const s = row.steps[i] || "NONE";
      if (old && old.steps[i] === s) continue;
      const td = e.cells[i];
      td.className = "cell s-" + s;
      td.dataset.state = s;
      td.title = this.steps[i] + ": " + s.toLowerCase();
      td.firstChild.textContent = SYMBOLS[s] || "";
    }
    this.showElapsed(e);
  }

  showElapsed(e) {
    const r = e.row;
    let text = "";
    if (r.started) text = duration((r.ended || this.app.now()) - r.started);
    else if (r.state === "PENDING" && r.created) text = "waiting " + duration(this.app.now() - r.created);
    if (e.elapsed.textContent !== text) e.elapsed.textContent = text;
  }

  tick() {
    if (document.hidden) return;
    for (const e of this.elements.values()) {
      if (e.row.state === "RUNNING" || e.row.state === "PENDING") this.showElapsed(e);
    }
  }

  afterChange() {
    const counts = { ALL: 0 };
    for (const s of STATES) counts[s] = 0;
    for (const e of this.elements.values()) { counts.ALL++; counts[e.row.state] = (counts[e.row.state] || 0) + 1; }
    for (const [state, n] of Object.entries(this.countEls)) {
      const text = String(counts[state] || 0);
      if (n.textContent !== text) n.textContent = text;
    }
    this.counts = counts;
    document.getElementById("fleet-empty").hidden = counts.ALL > 0;
    if (this.search) this.applySearch();
  }

  applySearch() {
    for (const [name, e] of this.elements) e.tr.hidden = !!this.search && !name.toLowerCase().includes(this.search);
  }
}
