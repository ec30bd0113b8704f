// The console's own script: what htmx does not do for the pages.
//
//   Console.api(method, path, body)   the JSON API with the session cookie; a refusal
//                                     shows its problem+json `detail` and throws
//   Console.notify(text, kind)        a message in the notices area
//   Console.live(path, params, types, onEvent, {after})
//                                     an SSE feed on single-use tickets: reopens with a
//                                     fresh ticket after a drop, from the last event id
//   Console.onJobEvent(fn)            every jobs.events event (one shared feed)
//   Console.drawer.track(job)         show a job in the jobs drawer (kept in localStorage)
//
// Pages listen for `conveyor:job-finished` (detail: the job) on document.
"use strict";

const Console = (() => {
  const CSRF = { "X-Conveyor-Console": "1" };
  const canWrite = () => document.body.dataset.canWrite === "true";
  const JOB_EVENTS = ["JobQueued", "JobScheduled", "JobStarted", "JobProgressed",
    "JobCompleted", "JobFailed", "JobCancelled"];
  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

  class Problem extends Error {
    constructor(status, detail, body) { super(detail); this.status = status; this.body = body; }
  }

  function signIn() {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`/console/sign-in?next=${encodeURIComponent(here)}`);
  }

  // --- notices ---------------------------------------------------------------------
  function notify(text, kind = "info") {
    const area = document.getElementById("notices");
    if (!area) return;
    const item = document.createElement("div");
    item.className = `notice ${kind}`;
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    const words = document.createElement("span");
    words.textContent = text;
    const close = document.createElement("button");
    close.type = "button"; close.className = "link"; close.textContent = "×";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => item.remove());
    item.append(words, close);
    area.append(item);
    if (kind !== "error") setTimeout(() => item.remove(), 6000);
  }

  // --- the API ---------------------------------------------------------------------
  async function api(method, path, body, headers = {}) {
    const init = { method, credentials: "same-origin", headers: { ...CSRF, ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      notify(`The gateway cannot be reached (${e.message}).`, "error");
      throw new Problem(0, e.message, null);
    }
    if (response.status === 401) { signIn(); throw new Problem(401, "signed out", null); }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!response.ok) {
      const detail = (data && data.detail) || `${response.status} ${response.statusText}`;
      notify(detail, "error");
      throw new Problem(response.status, detail, data);
    }
    return data;
  }

  // htmx: problem+json from a fragment shows its detail; a lost session signs in again.
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) { signIn(); return; }
    let detail = `${xhr.status} ${xhr.statusText}`;
    try { detail = JSON.parse(xhr.responseText).detail || detail; } catch (_) { /* HTML */ }
    notify(detail, "error");
  });
  document.addEventListener("htmx:sendError", () => notify("The gateway cannot be reached.", "error"));

  // --- live feeds ------------------------------------------------------------------
  const feeds = new Set();
  function showLiveState() {
    const badge = document.getElementById("live-state");
    if (!badge) return;
    const states = [...feeds].map((f) => f.state);
    const state = !states.length ? "offline" : states.every((s) => s === "live") ? "live" : "reconnecting";
    badge.textContent = state;
    badge.dataset.state = state;
  }

  // An SSE feed: `types` are the event names to pass to onEvent(type, data, id).
  // Every (re)connection takes a fresh single-use ticket and resumes after the last
  // event id seen (`after=`), so a drop loses and repeats nothing.
  function live(path, params, types, onEvent, options = {}) {
    const feed = { state: "connecting", cursor: options.after || null, source: null, closed: false };
    let delay = 500;
    const retry = () => {
      if (feed.closed) return;
      feed.state = "reconnecting"; showLiveState();
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
    async function open() {
      if (feed.closed) return;
      let ticket;
      try {
        ticket = (await api("POST", "/auth/tickets")).ticket;
      } catch (e) { retry(); return; }
      const query = new URLSearchParams(params || {});
      query.set("ticket", ticket);
      if (feed.cursor) query.set("after", feed.cursor);
      const source = new EventSource(`${path}?${query}`);
      feed.source = source;
      source.onopen = () => { delay = 500; feed.state = "live"; showLiveState(); };
      source.onerror = () => { source.close(); if (!feed.ended) retry(); };
      for (const type of types) {
        source.addEventListener(type, (message) => {
          if (message.lastEventId) feed.cursor = message.lastEventId;
          let data = null;
          try { data = JSON.parse(message.data); } catch (_) { data = message.data; }
          onEvent(type, data, message.lastEventId);
        });
      }
      // The gateway ends a feed that fell too far behind, or that it is closing: resume.
      for (const type of ["overflow", "closed"]) {
        source.addEventListener(type, () => { source.close(); retry(); });
      }
    }
    feed.close = () => { feed.closed = true; if (feed.source) feed.source.close(); feeds.delete(feed); showLiveState(); };
    feed.reconnect = () => { if (feed.source) feed.source.close(); open(); };
    feeds.add(feed); showLiveState();
    open();
    return feed;
  }

  // One feed of jobs.events for the whole page: the drawer and the pages share it.
  const jobListeners = new Set();
  let jobsFeed = null;
  function onJobEvent(fn) {
    jobListeners.add(fn);
    if (!jobsFeed) {
      jobsFeed = live("/events", { topics: "jobs" }, JOB_EVENTS, (type, data, id) => {
        for (const listener of jobListeners) listener(type, data, id);
      });
    }
    return () => jobListeners.delete(fn);
  }

  // --- the jobs drawer -------------------------------------------------------------
  const drawer = (() => {
    const KEY = "conveyor.drawer";
    const pending = new Map(); // job id -> timer of a coalesced refresh
    const heard = new Map(); // job id -> counts of its latest event (the feed can be ahead of GET /jobs)
    const load = () => { try { return JSON.parse(localStorage.getItem(KEY)) || []; } catch (_) { return []; } };
    const save = (items) => localStorage.setItem(KEY, JSON.stringify(items));
    const el = () => document.getElementById("drawer");

    function open(show = true) {
      const aside = el(); if (!aside) return;
      aside.hidden = !show;
      document.getElementById("drawer-toggle").setAttribute("aria-expanded", String(show));
      localStorage.setItem(`${KEY}.open`, show ? "1" : "0");
    }

    // A JobView: total, done, added, already_present, removed (what the mover did so far).
    function counts(job) {
      const total = job.total || 0;
      const parts = [`${number(job.added || 0)} added`, `${number(job.already_present || 0)} already there`];
      if (job.removed || job.kind === "move" || job.kind === "remove" || job.kind === "delete") parts.push(`${number(job.removed || 0)} removed`);
      return { done: job.done || 0, total, text: `${parts.join(" · ")} of ${number(total)}` };
    }

    function render(job, label) {
      const list = document.getElementById("drawer-jobs"); if (!list) return;
      let item = list.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`);
      if (!item) {
        item = document.createElement("li");
        item.className = "drawer-job";
        item.dataset.jobId = job.id;
        list.prepend(item);
      }
      const c = counts(job);
      const finished = FINISHED.has(job.status);
      item.dataset.status = job.status;
      item.innerHTML = "";
      const title = document.createElement("a");
      title.href = `/console/jobs/${encodeURIComponent(job.id)}`;
      title.textContent = label || `${job.kind} job`;
      const status = document.createElement("span");
      status.className = `status status-${job.status}`;
      status.textContent = job.status;
      const bar = document.createElement("progress");
      bar.max = Math.max(c.total, 1); bar.value = finished && job.status === "completed" ? bar.max : c.done;
      bar.setAttribute("aria-label", `progress of ${label || job.id}`);
      const numbers = document.createElement("p");
      numbers.className = "counts"; numbers.textContent = c.text;
      item.append(title, status, bar, numbers);
      if (job.error) {
        const error = document.createElement("p");
        error.className = "error"; error.textContent = job.error;
        item.append(error);
      }
      const actions = document.createElement("div");
      actions.className = "actions";
      if (!finished && canWrite()) {
        const cancel = document.createElement("button");
        cancel.type = "button"; cancel.textContent = "Cancel";
        cancel.addEventListener("click", async () => {
          cancel.disabled = true;
          try { await api("POST", `/jobs/${encodeURIComponent(job.id)}/cancel`); notify("Cancel requested."); }
          catch (_) { cancel.disabled = false; }
        });
        actions.append(cancel);
      }
      if (finished) {
        const dismiss = document.createElement("button");
        dismiss.type = "button"; dismiss.className = "link"; dismiss.textContent = "Dismiss";
        dismiss.addEventListener("click", () => forget(job.id));
        actions.append(dismiss);
      }
      item.append(actions);
      showCount();
    }

    function showCount() {
      const items = load();
      const count = document.getElementById("drawer-count");
      if (count) count.textContent = String(items.length);
      const empty = document.getElementById("drawer-empty");
      if (empty) empty.hidden = items.length > 0;
    }

    function forget(id) {
      save(load().filter((i) => i.id !== id));
      const item = document.querySelector(`#drawer-jobs [data-job-id="${CSS.escape(id)}"]`);
      if (item) item.remove();
      showCount();
    }

    async function refresh(id) {
      const entry = load().find((i) => i.id === id);
      if (!entry) return;
      let job;
      try { job = await api("GET", `/jobs/${encodeURIComponent(id)}`); }
      catch (e) { if (e.status === 404) forget(id); return; }
      const counts = heard.get(id) || {};
      for (const k of ["total", "done", "added", "already_present", "removed"]) {
        if (counts[k] > (job[k] || 0)) job[k] = counts[k];
      }
      const was = entry.status;
      entry.status = job.status;
      save(load().map((i) => (i.id === id ? entry : i)));
      render(job, entry.label);
      if (FINISHED.has(job.status) && !FINISHED.has(was || "")) {
        document.dispatchEvent(new CustomEvent("conveyor:job-finished", { detail: job }));
      }
    }

    // At most one refresh of a job every 250 ms however many events it gets.
    function soon(id) {
      if (pending.has(id)) return;
      pending.set(id, setTimeout(() => { pending.delete(id); refresh(id); }, 250));
    }

    function track(job, label) {
      const items = load().filter((i) => i.id !== job.id);
      items.push({ id: job.id, label, status: job.status });
      save(items.slice(-20));
      render(job, label);
      open(true);
      soon(job.id); // it may have moved on between the 202 and now
    }

    function start() {
      if (!el()) return;
      document.getElementById("drawer-toggle").addEventListener("click", () => open(el().hidden));
      document.getElementById("drawer-close").addEventListener("click", () => open(false));
      document.getElementById("drawer-clear").addEventListener("click", () => {
        for (const i of load()) if (FINISHED.has(i.status)) forget(i.id);
      });
      const items = load();
      for (const i of items) { render({ id: i.id, status: i.status || "queued", kind: "" }, i.label); refresh(i.id); }
      showCount();
      if (localStorage.getItem(`${KEY}.open`) === "1" && items.length) open(true);
      onJobEvent((type, data) => {
        if (!data || !data.job_id || !load().some((i) => i.id === data.job_id)) return;
        if (data.counts) heard.set(data.job_id, data.counts);
        soon(data.job_id);
      });
    }

    return { track, start, refresh, forget, open };
  })();

  // --- small helpers for pages -------------------------------------------------------
  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  // The drawer opens below the top bar (its height changes as the bar wraps on a phone).
  function measureHeader() {
    const bar = document.querySelector("header.top");
    if (bar) document.documentElement.style.setProperty("--header-h", `${bar.offsetHeight}px`);
  }
  window.addEventListener("resize", measureHeader);

  document.addEventListener("DOMContentLoaded", () => {
    measureHeader();
    drawer.start();
    const out = document.getElementById("sign-out");
    if (out) {
      out.addEventListener("click", async () => {
        try { await api("POST", "/console/sign-out"); } finally {
          localStorage.removeItem("conveyor.drawer");
          window.location.assign("/console/sign-in");
        }
      });
    }
  });

  return { api, notify, live, onJobEvent, drawer, debounce, number, canWrite, Problem, FINISHED };
})();
window.Console = Console;
