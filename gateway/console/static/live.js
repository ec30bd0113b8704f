// The Live page: jobs and batches events as a scrolling log.
//
// The page comes with the newest events made before it opened (#live-recent) and the
// cursor right after them (data-cursor); the feed (Console.live) resumes from there and,
// after any drop, from the last event it got: nothing missed, nothing twice.
// Paused, the feed keeps running and lines wait in a buffer; the log keeps the newest
// MAX_LINES; it follows the newest line unless the person scrolled up.
"use strict";

(() => {
  const MAX_LINES = 500;
  const NEAR_BOTTOM_PX = 24;
  const number = (n) => Console.number(n);

  function short(id) { return id && id.length > 12 ? `${id.slice(0, 8)}…` : (id || ""); }

  function clock(at) {
    const when = new Date(at);
    if (Number.isNaN(when.getTime())) return "";
    return when.toLocaleTimeString("en-GB", { hour12: false });
  }

  function counts(c) {
    if (!c) return "";
    const parts = [`${number(c.done)} of ${number(c.total)} done`];
    if (c.added) parts.push(`${number(c.added)} added`);
    if (c.already_present) parts.push(`${number(c.already_present)} already there`);
    if (c.removed) parts.push(`${number(c.removed)} removed`);
    return parts.join(" · ");
  }

  function fixed(x) { return x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US", { maximumFractionDigits: 2 }); }

  // What a line says after its type and subject: counts, minute figures, errors.
  const SUMMARIES = {
    JobQueued: (d) => [d.kind, `priority ${d.priority}`, `at most ${d.max_attempts} attempts`,
      d.not_before ? `not before ${new Date(d.not_before).toLocaleString("en-GB")}` : ""],
    JobScheduled: (d) => [d.not_before ? `waits until ${new Date(d.not_before).toLocaleString("en-GB")}` : "", counts(d.counts)],
    JobStarted: (d) => [`attempt ${d.attempt}`, counts(d.counts)],
    JobProgressed: (d) => [counts(d.counts)],
    JobCompleted: (d) => [counts(d.counts)],
    JobFailed: (d) => [`attempt ${d.attempt}`, counts(d.counts)],
    JobCancelled: (d) => [counts(d.counts)],
    BatchStarted: (d) => [`run ${short(d.run_id)}`, `${fixed(d.rate)} points/s`, d.distribution],
    BatchStopped: (d) => [`run ${short(d.run_id)}`, d.reason],
    MinuteClosed: (d) => [`minute ${clock(d.minute).slice(0, 5)}`, `${number(d.count)} points`,
      `avg ${fixed(d.count ? d.sum / d.count : null)}`, `min ${fixed(d.min)}`, `max ${fixed(d.max)}`],
  };

  function subject(data) {
    const link = document.createElement("a");
    if (data.job_id) {
      link.href = `/console/jobs/${encodeURIComponent(data.job_id)}`;
      link.textContent = `job ${short(data.job_id)}`;
      link.title = data.job_id;
    } else if (data.batch_id) {
      link.href = `/console/batches/${encodeURIComponent(data.batch_id)}`;
      link.textContent = `batch ${data.batch_id}`;
    } else {
      return document.createElement("span");
    }
    return link;
  }

  function line(type, data) {
    const item = document.createElement("li");
    item.className = `line type-${type}${data.job_id ? " topic-jobs" : " topic-batches"}`;
    item.dataset.type = type;
    if (data.id) item.dataset.eventId = data.id;
    if (data.job_id) item.dataset.jobId = data.job_id;
    if (data.batch_id) item.dataset.batchId = data.batch_id;
    const time = document.createElement("time");
    time.dateTime = data.at || "";
    time.title = data.at || "";
    time.textContent = clock(data.at);
    const name = document.createElement("span");
    name.className = "type";
    name.textContent = type;
    const summary = document.createElement("span");
    summary.className = "summary";
    const describe = SUMMARIES[type];
    summary.textContent = describe ? describe(data).filter(Boolean).join(" · ") : "";
    item.append(time, name, subject(data), summary);
    if (data.error) {
      const error = document.createElement("span");
      error.className = "error";
      error.textContent = data.error;
      item.append(error);
    }
    return item;
  }

  function notice(text) {
    const item = document.createElement("li");
    item.className = "line notice-line";
    item.textContent = text;
    return item;
  }

  function start() {
    const log = document.getElementById("live-log");
    if (!log) return;
    const lines = document.getElementById("live-lines");
    const empty = document.getElementById("live-empty");
    const below = document.getElementById("live-below");
    const pause = document.getElementById("live-pause");
    const status = document.getElementById("live-status");
    const count = document.getElementById("live-count");
    let paused = false;
    let waiting = [];
    let held = 0; // events that came while paused
    let following = true; // at the bottom: new lines scroll into view

    const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR_BOTTOM_PX;
    const toBottom = () => { log.scrollTop = log.scrollHeight; following = true; below.hidden = true; };

    function add(items) {
      if (!items.length) return;
      const follow = following;
      lines.append(...items);
      while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
      empty.hidden = true;
      count.textContent = number(lines.childElementCount);
      if (follow) toBottom(); else below.hidden = false;
    }

    function show(type, data) {
      if (type === "reset") return notice("Some events were trimmed from the streams before this log got them.");
      return line(type, data || {});
    }

    log.addEventListener("scroll", () => {
      following = atBottom();
      if (following) below.hidden = true;
    });
    below.addEventListener("click", () => { toBottom(); log.focus(); });
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) { add(waiting); waiting = []; held = 0; }
      status.textContent = paused ? "Paused: new events wait here until you resume." : "";
    });

    const recent = JSON.parse(document.getElementById("live-recent").textContent || "[]");
    add(recent.map((e) => show(e.type, e.data)));

    const types = [...JSON.parse(log.dataset.types), "reset"];
    const feed = Console.live("/events", { topics: log.dataset.topics }, types, (type, data) => {
      const item = show(type, data);
      if (paused) {
        waiting.push(item);
        held += 1;
        if (waiting.length > MAX_LINES) waiting.shift(); // the log would drop them anyway
        status.textContent = `Paused: ${number(held)} new events wait until you resume.`;
      } else {
        add([item]);
      }
    }, { after: log.dataset.cursor });
    window.liveLog = { feed };
  }

  document.addEventListener("DOMContentLoaded", start);
})();
