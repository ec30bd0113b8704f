// Sign-in: trade the pasted key for a session cookie, then go where the person was going.
"use strict";
document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const error = document.getElementById("sign-in-error");
  const key = form.elements.key.value.trim();
  error.hidden = true;
  let response;
  try {
    response = await fetch("/console/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Conveyor-Console": "1" },
      body: JSON.stringify({ key }),
    });
  } catch (e) {
    error.textContent = `The gateway cannot be reached: ${e.message}`;
    error.hidden = false;
    return;
  }
  if (response.ok) {
    form.elements.key.value = "";
    window.location.assign(form.dataset.next || "/console/lists");
    return;
  }
  let detail = `${response.status} ${response.statusText}`;
  try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
  error.textContent = detail;
  error.hidden = false;
  form.elements.key.select();
});
