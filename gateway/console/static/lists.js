// The Lists page: the selection of a list's companies, and what is done with it.
//
// The selection is kept per list in sessionStorage, so it survives paging, searching
// and a reload: {mode: "ids", ids: [...]} (these companies) or {mode: "all",
// exclude: [...]} (the whole list but these). It is sent to the API as it is: a list of
// ids, or {"all": true, "exclude": [...]} — never the ids of a whole list.
//
// Writes go to the JSON API through Console.api (its refusals show their detail). A job
// started here goes into the jobs drawer; when a job finishes, the lists column, the
// list's header and the grid are fetched again (the page's own URL) and put in place.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
  const number = (n) => Console.number(n);
  const plural = (n, one, many) => `${number(n)} ${n === 1 ? one : many}`;

  const panel = () => $("#list-panel");
  const listId = () => (panel() && panel().dataset.listId) || null;
  const listName = () => (panel() && panel().dataset.listName) || "";
  const listCount = () => {
    const meta = $("#grid .grid-meta");
    return meta ? Number(meta.dataset.count) : 0;
  };

  // --- the selection ---------------------------------------------------------------
  const key = (id) => `conveyor.lists.selection.${id}`;
  const nothing = () => ({ mode: "ids", ids: [] });

  function load(id = listId()) {
    if (!id) return nothing();
    try {
      const sel = JSON.parse(sessionStorage.getItem(key(id)));
      if (sel && sel.mode === "all" && Array.isArray(sel.exclude)) return sel;
      if (sel && sel.mode === "ids" && Array.isArray(sel.ids)) return sel;
    } catch (_) { /* a damaged entry is no selection */ }
    return nothing();
  }

  function save(sel, id = listId()) {
    if (!id) return;
    if (sel.mode === "ids" && !sel.ids.length) sessionStorage.removeItem(key(id));
    else sessionStorage.setItem(key(id), JSON.stringify(sel));
  }

  const size = (sel) => (sel.mode === "all" ? Math.max(0, listCount() - sel.exclude.length) : sel.ids.length);
  const picked = (sel, id) => (sel.mode === "all" ? !sel.exclude.includes(id) : sel.ids.includes(id));

  function pick(sel, id, on) {
    const ids = sel.mode === "all" ? sel.exclude : sel.ids;
    const want = sel.mode === "all" ? !on : on; // in "all" mode the list holds the unpicked
    const at = ids.indexOf(id);
    if (want && at < 0) ids.push(id);
    if (!want && at >= 0) ids.splice(at, 1);
  }

  // What the API takes as `selection`.
  const forApi = (sel) => (sel.mode === "all" ? { all: true, exclude: [...sel.exclude] } : [...sel.ids]);

  function describe(sel) {
    const n = size(sel);
    if (sel.mode === "all") {
      return sel.exclude.length
        ? `All ${number(listCount())} but ${number(sel.exclude.length)} selected (${number(n)})`
        : `All ${number(n)} selected`;
    }
    return `${number(n)} selected`;
  }

  // Put the selection on the page: the checkboxes, the header box, the bar.
  function paint() {
    const bar = $("#selection-bar");
    if (!bar) return;
    const sel = load();
    const boxes = $$("#grid input.pick");
    let on = 0;
    for (const box of boxes) {
      box.checked = picked(sel, Number(box.value));
      box.closest("tr").classList.toggle("selected", box.checked);
      if (box.checked) on += 1;
    }
    const page = $("#select-page");
    if (page) {
      page.checked = boxes.length > 0 && on === boxes.length;
      page.indeterminate = on > 0 && on < boxes.length;
    }
    const n = size(sel);
    $("#selection-count").textContent = describe(sel);
    bar.classList.toggle("active", n > 0);
    $("#selection-clear").hidden = n === 0 && sel.mode !== "all";
    const all = $("#select-all");
    if (all) {
      all.hidden = (sel.mode === "all" && !sel.exclude.length) || listCount() === 0;
      all.textContent = `Select all ${number(listCount())} in this list`;
    }
    for (const button of $$("[data-action]", bar)) button.disabled = n === 0;
    if (n === 0) close("action-panel");
    else if (!$("#action-panel").hidden) explain();
  }

  function change(fn) {
    const sel = load();
    fn(sel);
    save(sel);
    paint();
  }

  // --- the action panel (copy / move / remove) ---------------------------------------
  let action = null;

  function explain() {
    const sel = load();
    const what = plural(size(sel), "company", "companies");
    const verbs = { copy: `Copy ${what} of “${listName()}” to another list`,
      move: `Move ${what} out of “${listName()}” into another list`,
      remove: `Remove ${what} from “${listName()}”` };
    $("#action-what").textContent = `${verbs[action]}${sel.mode === "all" ? " (all of the list but the ones unselected)" : ""}.`;
    const go = $("#action-go");
    go.textContent = { copy: "Copy", move: "Move", remove: "Remove" }[action];
    go.classList.toggle("danger", action === "remove");
  }

  function openAction(which) {
    action = which;
    const form = $("#action-panel");
    form.hidden = false;
    const target = which !== "remove";
    for (const el of $$("[data-needs-target]", form)) el.hidden = !target;
    showTargetName();
    explain();
    for (const b of $$("#selection-bar [data-action]")) b.setAttribute("aria-expanded", String(b.dataset.action === which));
    (target ? $("#target") : $("#action-go")).focus();
  }

  function showTargetName() {
    const wanted = action !== "remove" && $("#target").value === "new";
    $("#target-name-label").hidden = !wanted;
    $("#target-name").required = wanted;
  }

  function close(id) {
    const el = document.getElementById(id);
    if (!el || el.hidden) return;
    const hadFocus = el.contains(document.activeElement);
    el.hidden = true;
    const openers = $$(`[aria-controls="${id}"]`);
    for (const b of openers) b.setAttribute("aria-expanded", "false");
    // Keyboard users land back on what opened the panel, not on the page's start.
    const opener = openers.find((b) => !b.disabled && b.dataset.action === action)
      || openers.find((b) => !b.disabled);
    if ((hadFocus || document.activeElement === document.body) && opener) opener.focus();
  }

  async function chooseTarget() {
    const select = $("#target");
    if (select.value !== "new") {
      const option = select.selectedOptions[0];
      return select.value ? { id: select.value, name: option.dataset.name } : null;
    }
    const name = $("#target-name").value.trim();
    if (!name) { $("#target-name").focus(); Console.notify("Give the new list a name.", "error"); return null; }
    try {
      const made = await Console.api("POST", "/collections", { name });
      return { id: made.id, name: made.name, made: true };
    } catch (e) {
      // a list of that name exists: offer it as the target instead
      const existing = e.body && e.body.existing;
      if (existing && select.querySelector(`option[value="${CSS.escape(existing.id)}"]`)) select.value = existing.id;
      showTargetName();
      return null;
    }
  }

  async function start() {
    const id = listId();
    const sel = load(id);
    const n = size(sel);
    if (!id || !n) return;
    const go = $("#action-go");
    go.disabled = true;
    try {
      let job, label, target = null;
      if (action === "remove") {
        job = await Console.api("POST", "/removals", { source: id, selection: forApi(sel) });
        label = `Remove ${number(n)} from ${listName()}`;
      } else {
        target = await chooseTarget();
        if (!target) { if ($("#target").value === "") { Console.notify("Choose the list to " + action + " to.", "error"); $("#target").focus(); } return; }
        job = await Console.api("POST", "/moves", { source: id, target: target.id, mode: action, selection: forApi(sel) });
        label = `${action === "copy" ? "Copy" : "Move"} ${number(n)} to ${target.name}`;
      }
      Console.drawer.track(job, label);
      save(nothing(), id);
      close("action-panel");
      $("#target-name").value = "";
      paint();
      if (target && target.made) refresh();
    } catch (e) {
      if (!(e instanceof Console.Problem)) throw e; // a refusal: its detail is shown
    } finally {
      go.disabled = false;
    }
  }

  // --- managing lists -----------------------------------------------------------------
  async function create(form) {
    const input = $("#new-list-name", form);
    const name = input.value.trim();
    if (!name) { input.focus(); return; }
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      const made = await Console.api("POST", "/collections", { name });
      window.location.assign(`/console/lists?list=${encodeURIComponent(made.id)}`);
    } catch (e) {
      const existing = e.body && e.body.existing;
      if (existing) Console.notify(`Open “${existing.name}” from the column, or choose another name.`);
      button.disabled = false;
    }
  }

  async function rename(form) {
    const name = $("#rename-name", form).value.trim();
    if (!name) return;
    try {
      const renamed = await Console.api("PATCH", `/collections/${encodeURIComponent(listId())}`, { name });
      Console.notify(`Renamed to “${renamed.name}”.`);
      close("rename-form");
      await refresh();
    } catch (e) { if (!(e instanceof Console.Problem)) throw e; }
  }

  async function remove() {
    const id = listId(), name = listName();
    const yes = $("#delete-yes");
    yes.disabled = true;
    try {
      const job = await Console.api("DELETE", `/collections/${encodeURIComponent(id)}`);
      Console.drawer.track(job, `Delete list ${name}`);
      close("delete-confirm");
      Console.notify(`“${name}” is being deleted; it disappears when the job completes.`);
    } catch (e) { if (!(e instanceof Console.Problem)) throw e; }
    finally { yes.disabled = false; }
  }

  // --- fetching the page again (after a job, a rename) --------------------------------
  // The page's own URL, parsed; the parts marked data-refresh (and the grid) replaced,
  // so that what someone is typing (search, a name) stays as it is.
  let refreshing = null;
  async function refresh() {
    if (refreshing) { refreshing.again = true; return; }
    refreshing = { again: false };
    try {
      let response;
      try {
        response = await fetch(window.location.pathname + window.location.search, { credentials: "same-origin" });
      } catch (e) { Console.notify("The gateway cannot be reached: the lists may be out of date.", "error"); return; }
      if (!response.ok || !new URL(response.url).pathname.startsWith("/console/lists")) {
        Console.notify(`The lists could not be reloaded (${response.status}).`, "error");
        return;
      }
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("list-panel");
      const same = fresh && fresh.dataset.listId === listId() && listId();
      const parts = same ? ["lists-column", "list-head", "select-all", "grid"] : ["lists-column", "list-panel"];
      const chosen = $("#target") ? $("#target").value : "";
      if (same) parts.push("target");
      for (const id of parts) {
        const now = document.getElementById(id), next = doc.getElementById(id);
        if (!now || !next) continue;
        if (id === "grid") now.innerHTML = next.innerHTML; else now.replaceWith(next);
        htmx.process(id === "grid" ? now : next);
      }
      if ($("#target") && chosen) $("#target").value = chosen;
      if (same) {
        const name = $("#list-title") ? $("#list-title").firstChild.textContent.trim() : "";
        if (name) { panel().dataset.listName = name; document.title = `${name} · Lists · Conveyor`; }
      }
      paint();
    } finally {
      const again = refreshing.again;
      refreshing = null;
      if (again) refresh();
    }
  }

  // --- wiring (delegated: the grid and the panel are swapped in and out) ---------------
  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el.matches("#grid input.pick")) change((sel) => pick(sel, Number(el.value), el.checked));
    else if (el.matches("#select-page")) {
      change((sel) => { for (const box of $$("#grid input.pick")) pick(sel, Number(box.value), el.checked); });
    } else if (el.matches("#target")) showTargetName();
  });

  document.addEventListener("click", (event) => {
    const el = event.target.closest("button");
    if (!el) return;
    if (el.id === "select-all") change((sel) => { sel.mode = "all"; sel.exclude = []; delete sel.ids; });
    else if (el.id === "selection-clear") { save(nothing()); paint(); }
    else if (el.dataset.action) openAction(el.dataset.action);
    else if (el.dataset.close) { close(el.dataset.close); }
    else if (el.id === "rename-open" || el.id === "delete-open") {
      const id = el.getAttribute("aria-controls");
      const target = document.getElementById(id);
      const show = target.hidden;
      close("rename-form"); close("delete-confirm");
      target.hidden = !show;
      el.setAttribute("aria-expanded", String(show));
      if (show) (id === "rename-form" ? $("#rename-name") : $("#delete-yes")).focus();
    } else if (el.id === "delete-yes") remove();
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const handlers = { "new-list": create, "rename-form": rename, "action-panel": start };
    if (!handlers[form.id]) return;
    event.preventDefault();
    handlers[form.id](form);
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const id of ["action-panel", "rename-form", "delete-confirm"]) close(id);
  });

  // The grid swapped (search, paging) or the page restored from history (the back
  // button fetches the page again: hx-history="false", so no stale counts come back):
  // show the selection again, and the search box as the URL says.
  document.addEventListener("htmx:afterSettle", paint);
  document.addEventListener("htmx:historyRestore", () => {
    const q = $("#q");
    if (q) q.value = new URLSearchParams(window.location.search).get("q") || "";
    paint();
  });
  document.addEventListener("htmx:responseError", (event) => {
    if (event.detail.target && event.detail.target.id === "grid") {
      event.detail.target.insertAdjacentHTML("afterbegin",
        '<p class="error" role="alert">The companies could not be loaded; try again.</p>');
    }
  });

  // A job ended: the counts and the grid are fetched again. A chunk under way when a
  // job was cancelled still lands, and says so with a JobProgressed after the end:
  // fetch again then too.
  const ended = new Set();
  const soon = Console.debounce(refresh, 300);
  document.addEventListener("conveyor:job-finished", (event) => {
    ended.add(event.detail.id);
    refresh();
  });
  document.addEventListener("DOMContentLoaded", () => {
    if (!$("#lists-main")) return;
    Console.onJobEvent((type, data) => {
      if (type === "JobProgressed" && data && ended.has(data.job_id)) soon();
    });
  });
  document.addEventListener("DOMContentLoaded", paint);
})();
