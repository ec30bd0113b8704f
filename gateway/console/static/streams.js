// The dead letters of a stream: Replay (one) and Replay all go to the JSON API
// (POST /streams/{stream}/dead-letters/replay), then the list is fetched again.
"use strict";

(() => {
  async function replay(list, body, button) {
    const stream = list.dataset.stream;
    button.disabled = true;
    let done;
    try {
      done = await Console.api("POST", `/streams/${encodeURIComponent(stream)}/dead-letters/replay`, body);
    } catch (_) {
      button.disabled = false; // the API's problem is shown already
      return;
    }
    const n = done.entry_ids.length;
    Console.notify(`Replayed ${n} dead letter${n === 1 ? "" : "s"} onto ${stream}; ${Console.number(done.left)} left.`);
    htmx.trigger(list, "refresh");
  }

  document.addEventListener("click", (event) => {
    const list = document.getElementById("dead-letters");
    if (!list || !Console.canWrite()) return;
    const one = event.target.closest("[data-replay]");
    if (one && list.contains(one)) { replay(list, { ids: [one.dataset.replay] }, one); return; }
    const all = event.target.closest("[data-replay-all]");
    if (all && list.contains(all)) {
      if (!window.confirm(`Replay every dead letter of ${list.dataset.stream} (the oldest 1,000 at most)?`)) return;
      replay(list, { all: true }, all);
    }
  });
})();
