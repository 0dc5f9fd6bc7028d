// One server: its preparations to choose from, the chosen one's stepper, and its log following live.
import { el, setText, duration, clock, when } from "./text.js";

const MAX_LINES = 5000;      // log lines kept in the page; older ones are dropped from the top
const ERROR_LINES = 12;      // the failed step's last output lines, highlighted
const ACTIVE = new Set(["PENDING", "RUNNING"]);

export class ServerView {
  constructor(app) {
    this.app = app;
    this.name = "";
    this.prepId = "";        // chosen in the URL, or "" for the latest
    this.prep = null;        // the preparation shown
    this.preps = [];
    this.source = null;      // the log's EventSource
    this.lastSeq = 0;
    this.logEnded = false;
    this.lines = [];         // [{div, step, output}]
    this.pendingEntries = [];
    this.frame = 0;
    this.refreshTimer = 0;
    this.generation = 0;     // bumped on every open(), so late answers for another server are ignored
    this.$ = (id) => document.getElementById(id);
    this.$("prepare-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.act("prepare"); });
    this.$("retry").addEventListener("click", () => this.act("retry"));
    this.$("cancel").addEventListener("click", () => this.act("cancel"));
    this.$("attempts").addEventListener("change", (ev) => {
      location.hash = "#/server/" + encodeURIComponent(this.name) + (ev.target.value ? "/" + encodeURIComponent(ev.target.value) : "");
    });
    this.$("docker-source").addEventListener("change", () => { this.sourceChosen = true; });
    this.$("follow").addEventListener("change", (ev) => { if (ev.target.checked) this.scrollToEnd(); });
    this.$("log").addEventListener("wheel", () => this.userScrolled());
    this.$("log").addEventListener("keydown", () => this.userScrolled());
    app.listeners.add((rows) => this.onRows(rows));
  }

  // -- opening and closing ---------------------------------------------------

  async open(name, prepId) {
    if (name === this.name && prepId === this.prepId && this.prep) return;
    const sameServer = name === this.name;
    this.close();
    this.name = name;
    this.prepId = prepId;
    const generation = ++this.generation;
    setText(this.$("server-name"), name);
    if (!sameServer) { setText(this.$("server-host"), ""); this.$("stepper").textContent = ""; }
    document.title = name + " · serverprep";
    try {
      const data = await this.app.api("GET", "/api/servers/" + encodeURIComponent(name));
      if (generation !== this.generation) return;
      const s = data.server;
      setText(this.$("server-host"), s.user + "@" + s.host + ":" + s.port + "  " + s.host_key_fingerprint);
      this.preps = data.preparations;
      let prep = prepId ? this.preps.find((p) => p.id === prepId) : this.preps[0];
      if (prepId && !prep) prep = (await this.app.api("GET", this.prepPath(prepId))).preparation;
      if (generation !== this.generation) return;
      this.showAttempts();
      this.show(prep || null);
      this.openLog();
    } catch (e) {
      if (generation === this.generation) this.app.error(e);
    }
  }

  close() {
    this.generation++;
    if (this.source) { this.source.close(); this.source = null; }
    clearTimeout(this.refreshTimer);
    this.name = "";
    this.prep = null;
    this.sourceChosen = false;
    this.lines = [];
    this.pendingEntries = [];
    this.lastSeq = 0;
    this.logEnded = false;
    this.$("log").textContent = "";
    setText(this.$("log-note"), "");
    document.title = "serverprep";
  }

  prepPath(id) {
    return "/api/servers/" + encodeURIComponent(this.name) + "/preparations/" + encodeURIComponent(id);
  }

  // -- the preparation ---------------------------------------------------------

  showAttempts() {
    const select = this.$("attempts");
    select.textContent = "";
    const latest = el("option", "", "latest");
    latest.value = "";
    select.append(latest);
    for (const p of this.preps) {
      const o = el("option", "", when(p.created) + " · " + p.state.toLowerCase() + (p.attempt > 1 ? " · attempt " + p.attempt : ""));
      o.value = p.id;
      select.append(o);
    }
    select.value = this.prepId;
  }

  show(prep) {
    this.prep = prep;
    const summary = this.$("prep-summary");
    summary.textContent = "";
    const stepper = this.$("stepper");
    const failure = this.$("failure");
    this.updateButtons();
    if (!prep) {
      stepper.textContent = "";
      failure.hidden = true;
      summary.append(el("span", "", "Never prepared. Choose the Docker source and press Prepare."));
      return;
    }
    const label = el("span", "state-label p-" + prep.state, prep.state.toLowerCase());
    summary.append(label);
    if (prep.os.name) summary.append(el("span", "", prep.os.name + (prep.os.architecture ? " · " + prep.os.architecture : "") + (prep.os.driver ? " · driver " + prep.os.driver : "")));
    summary.append(el("span", "", "docker " + prep.options.docker_source.toLowerCase()));
    if (prep.attempt > 1) summary.append(el("span", "", "attempt " + prep.attempt));
    if (prep.started) summary.append(el("span", "", "started " + when(prep.started)));
    if (prep.started) summary.append(el("span", "elapsed", duration((prep.ended || this.app.now()) - prep.started)));
    summary.append(el("span", "mono", prep.id));
    this.renderSteps(prep);
    if (prep.options.docker_source && !this.sourceChosen) {
      this.$("docker-source").value = prep.options.docker_source.toLowerCase(); // Prepare again as last time
    }
    if (prep.failure) {
      failure.hidden = false;
      failure.className = "failure" + (prep.state === "CANCELLED" ? " cancelled" : "");
      failure.textContent = "";
      failure.append(el("strong", "", prep.failure.reason), el("span", "", prep.failure.message));
      if (prep.state === "FAILED" && prep.failure.step) this.highlight(prep.failure.step);
    } else {
      failure.hidden = true;
    }
  }

  renderSteps(prep) {
    const stepper = this.$("stepper");
    const items = stepper.children;
    prep.steps.forEach((s, i) => {
      let li = items[i];
      if (!li) {
        li = el("li");
        li.append(el("div", "title"), el("span", "badge"), el("div", "meta"), el("div", "message"));
        stepper.append(li);
      }
      li.className = "s-" + s.state;
      li.dataset.step = s.name;
      li.dataset.state = s.state;
      const [title, badge, meta, message] = li.children;
      setText(title, s.name);
      title.title = s.name;
      setText(badge, s.state.toLowerCase());
      const parts = [];
      if (s.started) parts.push(duration((s.ended || this.app.now()) - s.started));
      if (s.exit_code !== null && s.exit_code !== undefined) parts.push("exit " + s.exit_code);
      if (s.attempts > 1) parts.push(s.attempts + " runs");
      setText(meta, parts.join(" · "));
      setText(message, s.message);
    });
    while (items.length > prep.steps.length) stepper.lastChild.remove();
  }

  updateButtons() {
    const state = this.prep ? this.prep.state : "NONE";
    this.$("retry").disabled = !(state === "FAILED" || state === "CANCELLED");
    this.$("cancel").disabled = !ACTIVE.has(state);
  }

  // The fleet stream says this server changed: fetch the details (debounced), follow a new preparation.
  onRows(rows) {
    if (!this.name) return;
    const row = rows.find((r) => r.name === this.name);
    if (!row) return;
    if (!this.prepId && row.id && (!this.prep || row.id !== this.prep.id)) {
      const name = this.name;
      this.close();
      this.open(name, "");
      return;
    }
    if (!this.prep || row.id !== this.prep.id) return;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 250);
  }

  async refresh() {
    if (!this.prep) return;
    const generation = this.generation;
    try {
      const data = await this.app.api("GET", this.prepPath(this.prep.id));
      if (generation !== this.generation) return;
      this.show(data.preparation);
      if (this.logEnded && ACTIVE.has(data.preparation.state)) this.openLog(); // retried: the log goes on
    } catch (e) {
      if (generation === this.generation) this.app.error(e);
    }
  }

  // -- actions -------------------------------------------------------------------

  async act(action) {
    const body = {};
    if (action === "prepare") {
      body.docker_source = this.$("docker-source").value;
      body.request_id = crypto.randomUUID();
    } else if (this.prep) {
      body.preparation_id = this.prep.id;
    }
    const button = this.$(action);
    button.disabled = true;
    try {
      const data = await this.app.api("POST", "/api/servers/" + encodeURIComponent(this.name) + "/" + action, body);
      const p = data.preparation;
      this.app.message("info", "", action + ": preparation " + p.id.slice(0, 8) + "… is " + p.state.toLowerCase());
      if (action === "prepare") {
        location.hash = "#/server/" + encodeURIComponent(this.name);
        const name = this.name;
        this.close();
        this.open(name, "");
      } else {
        this.show(p);
        if (this.logEnded && ACTIVE.has(p.state)) this.openLog();
      }
    } catch (e) {
      this.app.error(e);
    } finally {
      button.disabled = false;
      this.updateButtons();
    }
  }

  // -- the log -------------------------------------------------------------------

  openLog() {
    if (!this.prep) return;
    if (this.source) this.source.close();
    this.logEnded = false;
    const query = this.lastSeq ? "?after=" + this.lastSeq : "";
    const source = new EventSource(this.prepPath(this.prep.id) + "/log" + query);
    this.source = source;
    source.addEventListener("skipped", (ev) => {
      const n = JSON.parse(ev.data).after;
      this.note(n + " earlier entries are not shown (serverprep logs " + this.name + " has them all)");
    });
    source.addEventListener("entries", (ev) => {
      for (const entry of JSON.parse(ev.data)) this.pendingEntries.push(entry);
      if (!this.frame) this.frame = requestAnimationFrame(() => this.flushLog());
    });
    source.addEventListener("end", (ev) => {
      source.close();
      if (this.source === source) { this.source = null; this.logEnded = true; }
      setText(this.$("log-note"), "ended " + JSON.parse(ev.data).state.toLowerCase());
      this.refresh();
    });
    source.addEventListener("failed", (ev) => {
      source.close();
      if (this.source === source) { this.source = null; this.logEnded = true; }
      const e = JSON.parse(ev.data).error;
      this.app.message("error", e.reason, e.message, e.violations);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        this.app.message("error", "LOG_STREAM_CLOSED", "the gateway refused the log stream; reload the page to try again");
      }
      // otherwise the browser reconnects by itself, resuming after the last entry (Last-Event-ID)
    });
    setText(this.$("log-note"), "following");
  }

  note(text) {
    const div = el("div", "note", text);
    this.$("log").append(div);
  }

  flushLog() {
    this.frame = 0;
    const log = this.$("log");
    const fragment = document.createDocumentFragment();
    let failedStep = "";
    for (const [seq, time, step, stream, text, stepState, prepState] of this.pendingEntries) {
      if (seq <= this.lastSeq) continue;
      this.lastSeq = seq;
      const div = el("div", "l-" + stream);
      div.dataset.seq = seq;
      if (stepState) div.classList.add("ev-" + stepState);
      if (prepState) div.classList.add("ev-" + prepState);
      const span = el("span", "text", text);
      div.append(el("span", "seq", String(seq)), el("span", "step", clock(time) + " " + (step || "")), span);
      fragment.append(div);
      this.lines.push({ div, step, output: stream !== "EVENT" });
      if (stepState === "FAILED") failedStep = step;
    }
    this.pendingEntries = [];
    log.append(fragment);
    if (this.lines.length > MAX_LINES) {
      for (const line of this.lines.splice(0, this.lines.length - MAX_LINES)) line.div.remove();
    }
    if (failedStep) this.highlight(failedStep);
    if (this.$("follow").checked) this.scrollToEnd();
  }

  // The failed step's last output lines: where the reason usually is.
  highlight(step) {
    const out = this.lines.filter((l) => l.step === step && l.output);
    for (const l of this.lines) l.div.classList.remove("err-line");
    for (const l of out.slice(-ERROR_LINES)) l.div.classList.add("err-line");
  }

  scrollToEnd() {
    const log = this.$("log");
    log.scrollTop = log.scrollHeight;
  }

  userScrolled() {
    const log = this.$("log");
    requestAnimationFrame(() => {
      const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
      this.$("follow").checked = atEnd;
    });
  }
}
