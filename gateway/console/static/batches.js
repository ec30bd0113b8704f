// The Batches pages: the overview's start form and live figures, a batch's live
// points (uPlot), minutes and stop button. Writes go to the JSON API (Console.api).
"use strict";

(() => {
  const WINDOW_S = 300; // the chart keeps the last 5 minutes of points
  const DRAW_MS = 500;
  const fmt = (v) => {
    if (v === null || v === undefined) return "–";
    const n = Number(v);
    return Number.isInteger(n) ? n.toLocaleString("en-US")
      : n.toLocaleString("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
  };
  const two = (n) => String(n).padStart(2, "0");
  const hhmm = (ms) => { const d = new Date(ms); return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`; };
  const batchLink = (id) => {
    const a = document.createElement("a");
    a.href = `/console/batches/${encodeURIComponent(id)}`;
    a.textContent = id;
    return a;
  };

  // --- the overview ------------------------------------------------------------------
  function overview(root) {
    const live = document.getElementById("batches-live");
    const refresh = Console.debounce(() => {
      if (window.htmx) window.htmx.trigger(live, "batches-changed");
    }, 400);
    Console.live("/events", { topics: "batches" }, ["BatchStarted", "BatchStopped", "MinuteClosed"], refresh);
    const form = document.getElementById("start-form");
    if (form) startForm(form, refresh);
  }

  function startBody(form) {
    const data = new FormData(form);
    const body = { rate: Number(data.get("rate")), distribution: data.get("distribution") };
    const id = String(data.get("batch_id") || "").trim();
    if (id) body.batch_id = id;
    for (const name of ["low", "high", "mean", "stddev"]) {
      const text = String(data.get(name) || "").trim();
      if (text !== "") body[name] = Number(text);
    }
    return body;
  }

  function showRefusal(area, problem) {
    area.replaceChildren();
    const detail = document.createElement("p");
    detail.className = "error";
    detail.textContent = problem.message;
    area.append(detail);
    const body = problem.body || {};
    if (Array.isArray(body.errors) && body.errors.length) {
      const list = document.createElement("ul");
      for (const e of body.errors) {
        const item = document.createElement("li");
        item.textContent = `${e.key || e.index || ""}: ${e.message || e.error || ""}`;
        list.append(item);
      }
      area.append(list);
    }
    if (Array.isArray(body.running)) {
      const label = document.createElement("p");
      label.textContent = `Running now (${body.running.length} of ${body.limit ?? "the limit"}); stop one to start another:`;
      const list = document.createElement("ul");
      list.className = "refused-running";
      list.dataset.testid = "refused-running";
      for (const id of body.running) {
        const item = document.createElement("li");
        item.append(batchLink(id));
        list.append(item);
      }
      area.append(label, list);
    }
    area.hidden = false;
  }

  function startForm(form, refresh) {
    const area = document.getElementById("start-error");
    const button = document.getElementById("start-button");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      area.hidden = true;
      if (!form.reportValidity()) return;
      button.disabled = true;
      button.textContent = "Starting…";
      try {
        const run = await Console.api("POST", "/batches", startBody(form));
        if (run.already_running) Console.notify(`Batch ${run.batch_id} runs already.`);
        window.location.assign(`/console/batches/${encodeURIComponent(run.batch_id)}`);
      } catch (problem) {
        if (!(problem instanceof Console.Problem)) throw problem;
        showRefusal(area, problem);
        area.focus();
        refresh();
      } finally {
        button.disabled = false;
        button.textContent = "Start batch";
      }
    });
  }

  // --- a batch's page ------------------------------------------------------------------
  function chart(box) {
    const xs = [], ys = [];
    let plot = null, dirty = false;
    const width = () => Math.max(box.clientWidth, 280);
    function make() {
      const now = Date.now() / 1000;
      plot = new uPlot({
        width: width(), height: 260,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"), // the page speaks UTC
        scales: { x: { time: true, range: () => { const t = Date.now() / 1000; return [t - WINDOW_S, t]; } } },
        axes: [{}, { label: "value" }],
        legend: { show: false },
        series: [{}, {
          label: "value", stroke: "#2459c8", paths: () => null,
          points: { show: true, size: 4, fill: "#2459c8", stroke: "#2459c8" },
        }],
      }, [[now], [null]], box);
    }
    function draw() {
      if (!plot) make();
      const cut = Date.now() / 1000 - WINDOW_S;
      let drop = 0;
      while (drop < xs.length && xs[drop] < cut) drop++;
      if (drop) { xs.splice(0, drop); ys.splice(0, drop); }
      box.dataset.points = String(xs.length);
      document.getElementById("chart-empty").hidden = xs.length > 0;
      plot.setData(xs.length ? [xs, ys] : [[Date.now() / 1000], [null]]);
      dirty = false;
    }
    function add(points) {
      for (const p of points) {
        const x = Date.parse(p.ts) / 1000;
        let i = xs.length; // points mostly arrive in order: insert from the end
        while (i > 0 && xs[i - 1] > x) i--;
        xs.splice(i, 0, x); ys.splice(i, 0, p.key);
      }
      dirty = true;
    }
    make();
    setInterval(() => { if (dirty || xs.length) draw(); }, DRAW_MS); // also slides the window
    window.addEventListener("resize", Console.debounce(() => plot && plot.setSize({ width: width(), height: 260 }), 200));
    return { add };
  }

  function setStatus(root, status) {
    root.dataset.status = status;
    const badge = document.getElementById("batch-status");
    badge.textContent = status;
    badge.className = `status status-${status}`;
    const stop = document.getElementById("stop-batch");
    if (stop) stop.hidden = status !== "running";
  }

  function minuteRow(m) {
    const row = document.createElement("tr");
    const at = Date.parse(m.minute);
    row.dataset.minute = String(at);
    const time = document.createElement("time");
    time.dateTime = new Date(at).toISOString();
    time.textContent = new Date(at).toISOString().slice(0, 16).replace("T", " ");
    const first = document.createElement("td");
    first.append(time);
    row.append(first);
    for (const v of [m.count, m.sum, m.avg, m.min, m.max]) {
      const cell = document.createElement("td");
      cell.className = "num"; cell.textContent = fmt(v);
      row.append(cell);
    }
    const state = document.createElement("td");
    state.textContent = "closed";
    row.append(state);
    return row;
  }

  function minuteClosed(m) {
    const at = Date.parse(m.minute);
    const body = document.querySelector("#minutes tbody");
    const row = minuteRow(m);
    const same = body.querySelector(`tr[data-minute="${at}"]`);
    if (same) same.replaceWith(row);
    else {
      const later = [...body.rows].find((r) => Number(r.dataset.minute) < at);
      body.insertBefore(row, later || null);
    }
    document.getElementById("minutes-empty").hidden = true;
    const tiles = document.getElementById("last-minute");
    if (at >= Number(tiles.dataset.minute)) {
      tiles.dataset.minute = String(at);
      for (const field of ["count", "sum", "avg", "min", "max"]) {
        tiles.querySelector(`[data-field="${field}"]`).textContent = fmt(m[field]);
      }
      document.getElementById("last-minute-label").textContent = `${hhmm(at)}–${hhmm(at + 60000)} UTC`;
      document.getElementById("last-minute-state").textContent = "Final.";
    }
  }

  function batchPage(root) {
    const id = root.dataset.batchId;
    const points = chart(document.getElementById("chart"));
    const received = document.getElementById("points-received");
    const late = document.getElementById("points-late");
    let n = 0, nLate = 0;
    const types = ["snapshot", "PointsRecorded", "MinuteClosed", "BatchStarted", "BatchStopped"];
    Console.live(`/batches/${encodeURIComponent(id)}/events`, {}, types, (type, data) => {
      if (type === "snapshot") setStatus(root, data.status);
      else if (type === "PointsRecorded") {
        n += data.count; nLate += data.late || 0;
        received.textContent = fmt(n); late.textContent = fmt(nLate);
        points.add(data.points);
      } else if (type === "MinuteClosed") minuteClosed(data);
      else if (type === "BatchStarted") setStatus(root, "running");
      else if (type === "BatchStopped") setStatus(root, "stopped");
    });
    const stop = document.getElementById("stop-batch");
    if (stop) {
      stop.addEventListener("click", async () => {
        stop.disabled = true;
        stop.textContent = "Stopping…";
        try {
          await Console.api("POST", `/batches/${encodeURIComponent(id)}/stop`);
          window.location.assign("/console/batches");
        } catch (_) {
          stop.disabled = false;
          stop.textContent = "Stop batch";
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const list = document.getElementById("batches-overview");
    if (list) overview(list);
    const one = document.getElementById("batch-page");
    if (one) batchPage(one);
  });
})();
