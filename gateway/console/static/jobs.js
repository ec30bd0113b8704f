// The Jobs pages, live.
//
// Dashboard (/console/jobs): on every jobs.events event (Console.onJobEvent) the
// status tiles are re-read from GET /jobs/stats and the table from the page's own URL
// (the table fragment, at most once a second); when an attempt ends, the chart of
// GET /jobs/stats/minutes is redrawn. Filters, sort and pages are htmx requests
// whose URL the server pushes (HX-Push-Url).
//
// A job's page (/console/jobs/{id}): one feed of the job's events (GET /events,
// topics=jobs, job_id, after=the last timeline entry shown). Each event's id says how
// far the timeline must reach; the rows after the last one shown are fetched (the
// console's timeline fragment, from job_events) until they reach it, and the job's
// summary is re-read. Cancel and Retry go to the JSON API; a refusal shows its detail.
"use strict";

(() => {
  const FINAL = new Set(["JobCompleted", "JobFailed", "JobCancelled"]);
  const EVENTS = ["JobQueued", "JobScheduled", "JobStarted", "JobProgressed",
    "JobCompleted", "JobFailed", "JobCancelled"];

  // At most one call every `ms`, the last one always made.
  function throttle(fn, ms) {
    let timer = null; let again = false;
    const run = () => {
      timer = null;
      if (again) { again = false; fn(); timer = setTimeout(run, ms); }
    };
    return () => {
      if (timer) { again = true; return; }
      fn(); timer = setTimeout(run, ms);
    };
  }

  async function getJson(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { "X-Conveyor-Console": "1" } });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  // --- the dashboard ---------------------------------------------------------------
  function dashboard() {
    const tiles = document.getElementById("job-tiles");
    const chartBox = document.getElementById("jobs-chart");
    const HEIGHT = 180;
    let plot = null;

    const refreshTiles = throttle(async () => {
      let stats;
      try { stats = await getJson("/jobs/stats"); } catch (_) { return; }
      for (const tile of tiles.querySelectorAll("[data-status]")) {
        const n = tile.dataset.status ? stats.by_status[tile.dataset.status] : stats.total;
        tile.querySelector("[data-count]").textContent = Console.number(n || 0);
      }
    }, 1000);

    const refreshTable = throttle(() => {
      if (!document.getElementById("jobs-table")) return;
      htmx.ajax("GET", window.location.pathname + window.location.search,
        { target: "#jobs-table", swap: "outerHTML" });
    }, 1000);

    function drawChart(minutes) {
      const xs = minutes.map((m) => Date.parse(m.minute) / 1000);
      const completed = minutes.map((m) => m.completed);
      const failed = minutes.map((m) => m.failed);
      const data = [xs, completed, failed];
      const sum = (a) => a.reduce((s, n) => s + n, 0);
      chartBox.dataset.completed = String(sum(completed));
      chartBox.dataset.failed = String(sum(failed));
      const note = document.getElementById("jobs-chart-note");
      note.textContent = sum(completed) + sum(failed)
        ? `${Console.number(sum(completed))} completed and ${Console.number(sum(failed))} failed in the last hour.`
        : "No attempt ended in the last hour.";
      if (plot) { plot.setData(data); return; }
      chartBox.innerHTML = "";
      const bars = (align) => uPlot.paths.bars({ size: [0.45, 20], align });
      plot = new uPlot({
        width: Math.max(chartBox.clientWidth, 200), height: HEIGHT,
        scales: { x: { time: true, range: (u, min, max) => [min - 45, max + 45] }, y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        series: [
          {},
          { label: "completed", stroke: "#1f7a3a", fill: "rgba(31, 122, 58, .55)", paths: bars(-1), points: { show: false } },
          { label: "failed", stroke: "#b3261e", fill: "rgba(179, 38, 30, .55)", paths: bars(1), points: { show: false } },
        ],
        axes: [{}, { label: "attempts", size: 50 }],
      }, data, chartBox);
      chartBox.dataset.drawn = "true";
    }

    const refreshChart = Console.debounce(async () => {
      try {
        drawChart((await getJson("/jobs/stats/minutes?minutes=60")).minutes);
      } catch (e) {
        if (!plot) chartBox.innerHTML = '<p class="error">The per-minute counts could not be read; retrying in a minute.</p>';
      }
    }, 500);

    // The tiles are outside what a filter swaps: mark the one of the URL's status.
    const markTile = () => {
      const status = new URLSearchParams(window.location.search).get("status") || "";
      for (const tile of tiles.querySelectorAll("[data-status]")) {
        if (tile.dataset.status && tile.dataset.status === status) tile.setAttribute("aria-current", "true");
        else tile.removeAttribute("aria-current");
      }
    };
    document.body.addEventListener("htmx:pushedIntoHistory", markTile);
    document.body.addEventListener("htmx:historyRestore", markTile);

    refreshChart();
    setInterval(refreshChart, 30000); // the hour moves on even when nothing happens
    window.addEventListener("resize", Console.debounce(() => {
      if (plot) plot.setSize({ width: Math.max(chartBox.clientWidth, 200), height: HEIGHT });
    }, 200));
    Console.onJobEvent((type) => {
      refreshTiles();
      refreshTable();
      if (FINAL.has(type)) refreshChart();
    });
  }

  // --- a job's page ------------------------------------------------------------------
  function jobPage(root) {
    const jobId = root.dataset.jobId;
    const rows = document.getElementById("timeline-rows");
    const base = `/console/jobs/${encodeURIComponent(jobId)}`;
    let last = root.dataset.cursor; // entry id of the newest row shown (or just before the first)
    let reach = null; // the newest entry id the feed announced
    let busy = false; let again = false;

    const key = (id) => id.split("-").map(Number);
    const before = (a, b) => { const [x, y] = key(a); const [p, q] = key(b); return x < p || (x === p && y < q); };

    const refreshSummary = throttle(() => {
      htmx.ajax("GET", `${base}/summary`, { target: "#job-summary", swap: "outerHTML" });
    }, 300);

    // Fetch the rows after the last shown; once more when the projection is behind
    // the feed (the event is on the stream, not yet in job_events), for up to 30 s.
    async function catchUp() {
      if (busy) { again = true; return; }
      busy = true;
      const deadline = Date.now() + 30000;
      try {
        for (;;) {
          const response = await fetch(`${base}/timeline?after=${encodeURIComponent(last)}`,
            { credentials: "same-origin", headers: { "X-Conveyor-Console": "1" } });
          if (!response.ok) throw new Error(`the timeline could not be read (${response.status})`);
          const more = response.headers.get("X-Timeline-More") === "1";
          const holder = document.createElement("tbody");
          holder.innerHTML = await response.text();
          for (const row of [...holder.children]) {
            if (!rows.querySelector(`tr[data-entry-id="${CSS.escape(row.dataset.entryId)}"]`)) rows.append(row);
            last = row.dataset.entryId;
          }
          document.getElementById("timeline-empty").hidden = rows.children.length > 0;
          if (more) continue;
          document.getElementById("timeline-more").hidden = true;
          if (reach === null || !before(last, reach) || Date.now() > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      } catch (e) {
        Console.notify(e.message, "error");
      } finally {
        busy = false;
        refreshSummary();
        if (again) { again = false; catchUp(); }
      }
    }

    // The job's events after the timeline shown, live.
    Console.live("/events", { topics: "jobs", job_id: jobId }, EVENTS, (type, data, id) => {
      const entry = /jobs:([0-9]+-[0-9]+)/.exec(id || "");
      if (entry && (reach === null || before(reach, entry[1]))) reach = entry[1];
      catchUp();
    }, { after: `jobs:${last}` });
    if (!document.getElementById("timeline-more").hidden) catchUp();

    // Cancel and Retry: the JSON API; a refusal's detail is shown by Console.api.
    root.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-job-action]");
      if (!button) return;
      const action = button.dataset.jobAction;
      button.disabled = true;
      try {
        await Console.api("POST", `/jobs/${encodeURIComponent(jobId)}/${action}`);
        Console.notify(action === "cancel" ? "Cancel requested." : "Retry requested: a new attempt starts.");
      } catch (_) {
        button.disabled = false;
      }
      refreshSummary();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const job = document.getElementById("job-page");
    if (job) jobPage(job);
    else if (document.getElementById("jobs-results")) dashboard();
  });
})();
