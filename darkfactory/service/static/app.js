// Dark Factory dashboard: live updates of the server-rendered pages.
// Everything a run wrote is hostile: it only ever reaches the page through textContent.
"use strict";

(function () {
  const ACTIVE = ["queued", "running"];
  const FINAL = ["delivered", "failed", "escalated", "rejected", "budget_exhausted", "cancelled"];
  const PAUSED = "awaiting_approval";
  const MAX_STREAM = 400;

  // -- helpers ---------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function token(value) { // a status or kind as a class name: letters and _ only
    return String(value || "").toLowerCase().replace(/[^a-z_]/g, "");
  }
  function human(value) { return String(value || "").replace(/_/g, " "); }
  function money(value) {
    if (value === null || value === undefined) return "price unknown";
    const v = Number(value);
    if (v === 0) return "$0";
    return "$" + (v < 0.01 ? v.toFixed(4) : v.toFixed(2));
  }
  function age(ts) {
    if (!ts) return "";
    const s = Math.max(0, Math.floor(Date.now() / 1000 - Number(ts)));
    if (s < 5) return "just now";
    if (s >= 86400) return Math.floor(s / 86400) + "d ago";
    if (s >= 3600) return Math.floor(s / 3600) + "h ago";
    if (s >= 60) return Math.floor(s / 60) + "m ago";
    return s + "s ago";
  }
  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour12: false });
  }
  function seconds(a, b) {
    const s = (new Date(b).getTime() - new Date(a).getTime()) / 1000;
    if (!isFinite(s)) return "";
    return s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }
  function cut(value, n) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (text === undefined) return "";
    return text.length > n ? text.slice(0, n) + "…" : text;
  }
  function setBadge(node, status) {
    node.className = "badge s-" + token(status);
    node.textContent = human(status);
  }
  function field(root, name) { return root.querySelector('[data-field="' + name + '"]'); }
  function setText(root, name, value) {
    const node = field(root, name);
    if (node) node.textContent = value === null || value === undefined ? "" : String(value);
  }
  function notice(text) {
    const node = document.querySelector("[data-notice]");
    if (!node) return;
    node.textContent = text || "";
    node.hidden = !text;
  }
  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  }
  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) { toLogin(); throw new Error("signed out"); }
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }
  function tickAges() {
    for (const node of document.querySelectorAll("[data-age]")) {
      node.textContent = age(node.getAttribute("data-age"));
    }
  }
  async function refreshCounts() {
    try {
      const health = await getJSON("/api/health");
      const counts = health.runs || {};
      const badge = document.querySelector("[data-inbox-count]");
      if (badge) {
        const n = counts[PAUSED] || 0;
        badge.textContent = String(n);
        badge.classList.toggle("zero", !n);
      }
      let total = 0;
      for (const link of document.querySelectorAll("[data-count]")) {
        const status = link.getAttribute("data-count");
        if (!status) continue;
        const n = counts[status] || 0;
        total += n;
        link.textContent = String(n);
        link.parentElement.classList.toggle("zero", !n);
      }
      const all = document.querySelector('[data-count=""]');
      if (all) all.textContent = String(total);
    } catch (err) { /* the next poll tries again */ }
  }

  // -- the run list ----------------------------------------------------------------------
  function runsPage() {
    const table = document.querySelector("[data-runs]");
    const tbody = table.querySelector("tbody");
    const template = document.getElementById("run-row");
    const empty = document.querySelector("[data-empty]");
    const filter = table.getAttribute("data-filter") || "";

    function fill(row, run) {
      row.setAttribute("data-id", run.id);
      const link = field(row, "title");
      link.href = "/runs/" + encodeURIComponent(run.id);
      link.textContent = run.title;
      setText(row, "id", run.id);
      setBadge(field(row, "status"), run.status);
      setText(row, "phase", run.phase || "");
      setText(row, "llm_calls", run.llm_calls);
      setText(row, "cost", money(run.cost_usd));
      setText(row, "submitted_by", run.submitted_by);
      const when = field(row, "age");
      when.setAttribute("data-age", String(run.created_at));
      when.textContent = age(run.created_at);
      if (typeof run.scripted === "boolean") field(row, "scripted").hidden = !run.scripted;
      else if (typeof run.model === "string") field(row, "scripted").hidden = !/^(scripted|replay):/.test(run.model);
    }

    async function poll() {
      let runs;
      try {
        runs = await getJSON("/api/runs" + (filter ? "?status=" + encodeURIComponent(filter) : ""));
      } catch (err) {
        notice("The run list could not be updated (" + err.message + "); trying again.");
        return;
      }
      notice("");
      const rows = new Map();
      for (const row of tbody.querySelectorAll("tr[data-id]")) rows.set(row.getAttribute("data-id"), row);
      const ordered = runs.slice(0, 200).map(function (run) {
        let row = rows.get(run.id);
        if (!row) row = template.content.firstElementChild.cloneNode(true);
        fill(row, run);
        return row;
      });
      tbody.replaceChildren.apply(tbody, ordered);
      empty.hidden = ordered.length > 0;
      refreshCounts();
    }
    setInterval(poll, 2000);
  }

  // -- one run ---------------------------------------------------------------------------
  function runPage() {
    const root = document.querySelector("[data-run-id]");
    const runId = root.getAttribute("data-run-id");
    const base = "/api/runs/" + encodeURIComponent(runId);
    const timeline = root.querySelector("[data-timeline]");
    const timelineEmpty = root.querySelector("[data-timeline-empty]");
    const stream = root.querySelector("[data-stream]");
    const matrix = root.querySelector("[data-matrix] tbody");
    const matrixEmpty = root.querySelector("[data-matrix-empty]");
    const tests = root.querySelector("[data-tests]");
    const diff = root.querySelector("[data-diff]");
    const reqTests = new Map(); // requirement id -> Map(test -> outcome), from the live trace
    let llmCalls = 0;
    let status = root.getAttribute("data-status");
    let diffTimer = null;

    function applyStatus(next, reason) {
      status = next;
      root.setAttribute("data-status", next);
      setBadge(field(root, "status"), next);
      const why = field(root, "reason");
      if (reason !== undefined) {
        why.textContent = reason || "";
        why.hidden = !reason;
      }
      for (const node of root.querySelectorAll("[data-show]")) {
        const when = node.getAttribute("data-show");
        let show = false;
        if (when === "paused") show = next === PAUSED;
        else if (when === "cancellable") show = FINAL.indexOf(next) < 0;
        else if (when === "ended") show = ACTIVE.indexOf(next) < 0;
        node.hidden = !show;
      }
    }

    // The phase timeline.
    function openPhase(name) {
      const items = timeline.querySelectorAll("li.phase");
      for (let i = items.length - 1; i >= 0; i--) {
        if (items[i].getAttribute("data-phase") === name && !items[i].classList.contains("closed")) return items[i];
      }
      return null;
    }
    function lastPhase() {
      const items = timeline.querySelectorAll("li.phase");
      return items.length ? items[items.length - 1] : null;
    }
    function timelineItem(cls, name, when) {
      const li = el("li", cls);
      li.appendChild(el("span", "name", name));
      if (when) li.appendChild(el("span", "when", when));
      li.appendChild(el("ul"));
      timeline.appendChild(li);
      timelineEmpty.hidden = true;
      return li;
    }
    function note(text, phase) {
      const li = (phase && openPhase(phase)) || lastPhase();
      if (li) li.querySelector("ul").appendChild(el("li", "", text));
    }

    // The activity stream.
    function say(rec, cls, text) {
      const atBottom = stream.scrollHeight - stream.scrollTop - stream.clientHeight < 40;
      const li = el("li", cls);
      li.appendChild(el("span", "t", clock(rec.ts)));
      li.appendChild(el("span", "k", human(rec.kind === "tool_call" ? rec.role || "tool" : rec.kind)));
      li.appendChild(el("span", "x", text));
      li.title = (rec.phase ? rec.phase + " · " : "") + rec.kind;
      stream.appendChild(li);
      while (stream.children.length > MAX_STREAM) stream.removeChild(stream.firstChild);
      if (atBottom) stream.scrollTop = stream.scrollHeight;
    }
    function argsOf(args) {
      if (!args || typeof args !== "object") return cut(args, 80);
      for (const key of ["path", "paths", "command", "argv", "coworker", "query"]) {
        if (args[key] !== undefined) return cut(Array.isArray(args[key]) ? args[key].join(" ") : args[key], 100);
      }
      return "";
    }
    function counts(c) { return c ? c.passed + "/" + c.total : "–"; }

    // The tests and the requirement matrix, live.
    function testRow(rec) {
      const body = tests.querySelector("tbody");
      const key = rec.suite + "::" + rec.test;
      let row = null;
      for (const r of body.children) if (r.getAttribute("data-key") === key) row = r;
      if (!row) {
        row = el("tr");
        row.setAttribute("data-key", key);
        row.appendChild(el("td", "", rec.suite));
        row.appendChild(el("td")).appendChild(el("code", "", rec.test));
        row.appendChild(el("td", "", (rec.requirements || []).join(", ")));
        row.appendChild(el("td")).appendChild(el("span", "result"));
        body.appendChild(row);
      }
      const result = row.lastElementChild.firstElementChild;
      result.className = "result r-" + token(rec.outcome);
      result.textContent = rec.outcome;
      tests.hidden = false;
    }
    function matrixRow(id) {
      for (const r of matrix.children) if (r.getAttribute("data-req") === id) return r;
      const row = el("tr");
      row.setAttribute("data-req", id);
      row.appendChild(el("td")).appendChild(el("code", "", id));
      row.appendChild(el("td", "muted", "(its text is in the report when the run ends)"));
      row.appendChild(el("td", "tests"));
      row.appendChild(el("td")).appendChild(el("span", "result r-pending", "pending"));
      matrix.appendChild(row);
      matrixEmpty.hidden = true;
      return row;
    }
    function setResult(row, value) {
      const result = row.lastElementChild.firstElementChild;
      result.className = "result r-" + token(value);
      result.textContent = value;
    }
    function liveRequirements(rec) {
      if (rec.suite === "unit") return;
      for (const id of rec.requirements || []) {
        if (!reqTests.has(id)) reqTests.set(id, new Map());
        const outcomes = reqTests.get(id);
        outcomes.set(rec.test, rec.outcome);
        const row = matrixRow(String(id));
        const cell = row.children[2];
        cell.replaceChildren();
        for (const test of outcomes.keys()) {
          cell.appendChild(el("code", "", test));
          cell.appendChild(document.createTextNode(" "));
        }
        const all = Array.from(outcomes.values());
        setResult(row, all.every(function (o) { return o === "passed"; }) ? "passed"
          : all.some(function (o) { return o === "failed" || o === "error"; }) ? "failed" : "pending");
      }
    }
    function renderRequirements(reqs) {
      if (!reqs || !reqs.length) return;
      const rows = reqs.map(function (r) {
        const row = el("tr");
        row.setAttribute("data-req", String(r.id));
        row.appendChild(el("td")).appendChild(el("code", "", r.id));
        row.appendChild(el("td", "", r.text));
        const cell = el("td", "tests");
        for (const t of r.tests || []) {
          cell.appendChild(el("code", "", t));
          cell.appendChild(document.createTextNode(" "));
        }
        if (r.untested_reason) cell.appendChild(el("em", "", r.untested_reason));
        row.appendChild(cell);
        row.appendChild(el("td")).appendChild(el("span", "result"));
        setResult(row, r.status || "pending");
        return row;
      });
      matrix.replaceChildren.apply(matrix, rows);
      matrixEmpty.hidden = true;
    }
    function renderSuites(run) {
      const box = root.querySelector("[data-suites]");
      const parts = [["acceptance", run.acceptance], ["unit", run.unit_tests], ["holdout (sealed)", run.holdout]];
      const nodes = [];
      for (const [name, c] of parts) {
        if (!c) continue;
        const node = el("div", "suite " + (c.total && c.passed === c.total ? "ok" : c.total ? "bad" : ""));
        node.appendChild(el("span", "label", name));
        node.appendChild(el("strong", "", c.passed + "/" + c.total));
        node.appendChild(document.createTextNode(" passed"));
        if (c.failed) node.appendChild(el("span", "minus", " · " + c.failed + " failed"));
        nodes.push(node);
      }
      if (run.docs) {
        const d = run.docs;
        const node = el("div", "suite " + (d.passed ? "ok" : "bad"));
        node.appendChild(el("span", "label", "docs"));
        node.appendChild(document.createTextNode((d.built ? "built, " + d.pages + " page(s)" : "not built") + " · examples "));
        node.appendChild(el("strong", "", d.examples_passed + "/" + d.examples_run));
        nodes.push(node);
      }
      if (nodes.length) box.replaceChildren.apply(box, nodes);
    }

    async function refreshDetail() {
      let run;
      try { run = await getJSON(base); } catch (err) { return; }
      setText(root, "phase", run.phase || "—");
      setText(root, "llm_calls", run.llm_calls);
      setText(root, "cost", money(run.cost_usd));
      if (run.checkpoint) setText(root, "checkpoint", human(run.checkpoint));
      renderRequirements(run.requirements);
      renderSuites(run);
    }
    async function refreshDiff() {
      if (!diff) return;
      let text;
      try {
        const resp = await fetch(base + "/diff", { credentials: "same-origin" });
        if (!resp.ok) return;
        text = await resp.text();
      } catch (err) { return; }
      const lines = text ? text.split("\n") : ["(no change in the workspace yet)"];
      if (lines.length && lines[lines.length - 1] === "") lines.pop();
      const spans = lines.map(function (line) {
        let kind = "ctx";
        if (/^(diff --git|\+\+\+ |--- |new file|deleted file|index )/.test(line)) kind = "file";
        else if (line.startsWith("@@")) kind = "hunk";
        else if (line.startsWith("+")) kind = "add";
        else if (line.startsWith("-")) kind = "del";
        return el("span", kind, line + "\n");
      });
      diff.replaceChildren.apply(diff, spans);
      const stat = diff.previousElementSibling;
      if (stat && stat.classList.contains("stat")) stat.hidden = true; // the numbers were of the old diff
    }
    function soonDiff() {
      if (diffTimer) return;
      diffTimer = setTimeout(function () { diffTimer = null; refreshDiff(); }, 1500);
    }

    function onTrace(rec) {
      const kind = rec.kind;
      if (kind === "phase_start") {
        const li = timelineItem("phase running", human(rec.phase), clock(rec.ts));
        li.setAttribute("data-phase", rec.phase);
        li.setAttribute("data-start", rec.ts);
        setText(root, "phase", rec.phase);
      } else if (kind === "phase_end") {
        const li = openPhase(rec.phase);
        if (li) {
          li.classList.remove("running");
          li.classList.add("closed", rec.passed === false ? "failed" : "done");
          li.querySelector(".when").textContent = clock(li.getAttribute("data-start")) + " · " + seconds(li.getAttribute("data-start"), rec.ts);
        }
        soonDiff();
      } else if (kind === "run_start") {
        timelineItem("start done closed", "run started", clock(rec.ts));
        say(rec, "", "sandbox " + cut(rec.sandbox, 40) + (rec.spec && rec.spec.title ? " · " + cut(rec.spec.title, 80) : ""));
      } else if (kind === "run_resumed") {
        timelineItem("start done closed", "resumed", clock(rec.ts));
        say(rec, "", "resumed after " + ((rec.after || []).length) + " finished step(s)");
      } else if (kind === "crew_start") {
        note("crew " + rec.task + ": " + rec.manager + " with " + (rec.agents || []).length + " agent(s)", rec.phase);
      } else if (kind === "crew_end") {
        note("crew " + rec.task + ": " + cut(rec.outcome, 120), rec.phase);
      } else if (kind === "phase_work") {
        note((rec.files || []).length + " file(s) changed, " + rec.tests_run + " test run(s)", rec.phase);
      } else if (kind === "checkpoint") {
        note(human(rec.checkpoint) + ": " + rec.decision + " by " + rec.by, rec.phase);
        say(rec, "check " + (rec.decision === "approved" ? "ok" : "bad"), human(rec.checkpoint) + ": " + rec.decision + " by " + rec.by + (rec.reason ? " — " + cut(rec.reason, 300) : ""));
      } else if (kind === "awaiting_approval") {
        const li = lastPhase();
        if (li) li.classList.add("waiting");
        note("waiting for a person at " + human(rec.checkpoint), rec.phase);
        say(rec, "check", "waiting for a person at " + human(rec.checkpoint));
      } else if (kind === "run_end") {
        for (const li of timeline.querySelectorAll("li.running")) li.classList.replace("running", "done");
        const li = timelineItem("end " + (rec.status === "delivered" ? "done" : "failed"), human(rec.status), clock(rec.ts));
        li.querySelector("ul").appendChild(el("li", "", cut(rec.reason, 400)));
        say(rec, rec.status === "delivered" ? "ok" : "bad", human(rec.status) + ": " + cut(rec.reason, 400));
      } else if (kind === "llm_call") {
        llmCalls += 1;
        setText(root, "llm_calls", llmCalls);
      } else if (kind === "tool_call") {
        const args = argsOf(rec.args);
        say(rec, rec.outcome === "ok" ? "" : "bad", rec.tool + (args ? "  " + args : "") + (rec.outcome === "ok" ? "" : "  → " + rec.outcome));
      } else if (kind === "test_run") {
        say(rec, "test " + (rec.passed === rec.total && !rec.failed && !rec.errors ? "ok" : "bad"), "tests " + cut((rec.paths || []).join(" "), 100) + ": " + rec.passed + "/" + rec.total + " passed");
      } else if (kind === "test_outcome") {
        testRow(rec);
        liveRequirements(rec);
      } else if (kind === "verify") {
        say(rec, "test " + (rec.passed ? "ok" : "bad"), "verify round " + rec.round + ": acceptance " + counts(rec.acceptance) + ", unit " + counts(rec.unit));
      } else if (kind === "sandbox_exec") {
        if (!rec.tool) say(rec, rec.exit_code === 0 ? "" : "bad", "$ " + cut((rec.argv || []).join(" "), 160) + "  → exit " + rec.exit_code);
      } else if (kind === "delegation") {
        say(rec, "", rec.by + " → " + rec.coworker + ": " + cut(rec.task, 200));
      } else if (kind === "docs_check") {
        say(rec, "test " + (rec.passed ? "ok" : "bad"), "docs " + (rec.built ? "built" : "not built") + ", " + rec.pages + " page(s), examples " + rec.examples_passed + "/" + rec.examples_run);
      } else if (kind === "doc_example") {
        testRow({ suite: "docs", test: rec.file + ":" + rec.line, requirements: [], outcome: rec.outcome });
      } else if (kind === "fix_round" || kind === "docs_fix_round") {
        note(human(kind) + " " + rec.round, rec.phase);
        say(rec, "bad", human(kind) + " " + rec.round + (rec.route ? " → " + rec.route : ""));
      } else if (kind === "escalation" || kind === "ambiguity") {
        say(rec, "bad", cut(rec.reason || rec.question, 400));
      } else if (kind === "budget") {
        say(rec, "bad", "budget exhausted: " + cut(rec.exhausted, 80));
      } else if (kind === "deploy") {
        say(rec, rec.exit_code === 0 ? "ok" : "bad", "$ " + cut((rec.argv || []).join(" "), 200) + "  → exit " + rec.exit_code);
      } else if (["protocol_error", "protocol_failure", "model_refusal", "security", "delegation_refused", "delegation_stuck", "failure_classification", "deliver", "acceptance_frozen", "holdout_sealed", "llm_retry", "prompt_cut"].indexOf(kind) >= 0) {
        const text = rec.error || rec.detail || rec.what || rec.reason || rec.primary || rec.text || (rec.files ? (rec.files.length + " file(s)") : "");
        say(rec, ["deliver", "acceptance_frozen", "holdout_sealed", "prompt_cut"].indexOf(kind) >= 0 ? "" : "bad", cut(text, 300));
      }
    }

    if (!stream.children.length) stream.appendChild(el("li", "empty", "Waiting for events…"));
    const source = new EventSource(base + "/events");
    source.addEventListener("status", function (e) {
      const s = JSON.parse(e.data);
      const was = status;
      applyStatus(s.status, s.reason);
      if (s.status !== was && ACTIVE.indexOf(s.status) < 0) { refreshDetail(); refreshDiff(); }
    });
    source.addEventListener("trace", function (e) {
      let rec;
      try { rec = JSON.parse(e.data); } catch (err) { return; }
      if (!rec || typeof rec !== "object") return;
      const first = stream.querySelector("li.empty");
      if (first) first.remove();
      onTrace(rec);
    });
    source.addEventListener("end", function (e) {
      source.close();
      const s = JSON.parse(e.data);
      applyStatus(s.status, s.reason);
      refreshDetail();
      refreshDiff();
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) notice("Live updates stopped: reload the page to follow the run.");
    };
  }

  // -- the inbox -------------------------------------------------------------------------
  function inboxPage() {
    const box = document.querySelector("[data-inbox]");
    const shown = (box.getAttribute("data-ids") || "").split(" ").filter(Boolean).sort().join(" ");
    async function poll() {
      let runs;
      try { runs = await getJSON("/api/runs?status=" + PAUSED); } catch (err) { return; }
      const now = runs.map(function (r) { return r.id; }).sort().join(" ");
      notice(now === shown ? "" : "The inbox changed: reload the page to see it.");
      refreshCounts();
    }
    setInterval(poll, 5000);
  }

  // -- every page ------------------------------------------------------------------------
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  }
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", function (e) { // no double submit
      if (e.defaultPrevented) return;
      for (const b of form.querySelectorAll("button")) setTimeout(function () { b.disabled = true; }, 0);
    });
  }
  setInterval(tickAges, 5000);
  const page = document.body.getAttribute("data-page");
  if (page === "runs") runsPage();
  else if (page === "run") runPage();
  else if (page === "inbox") inboxPage();
})();
