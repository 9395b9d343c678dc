// The dashboard's one script: the service filter, and live updates. It
// follows the server's event stream (Server-Sent Events at /events): when
// an event names a service, it fetches that service's row (or the service
// page's sections) and swaps it in; when the stream breaks it says so and
// the browser reconnects by itself, and on reconnecting everything shown
// is fetched again, since events may have been missed meanwhile.
"use strict";

const live = document.body.dataset.live;
const connection = document.getElementById("connection");

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

function applyFilter() {
  const filter = document.getElementById("filter");
  if (!filter) return;
  const wanted = filter.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("#rows tr")) {
    row.hidden = wanted !== "" && !row.dataset.service.toLowerCase().includes(wanted);
  }
}

async function fetchText(url) {
  const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!answer.ok) throw new Error(url + ": " + answer.status);
  return answer.text();
}

function flash(element) {
  element.classList.add("changed");
  setTimeout(() => element.classList.remove("changed"), 50);
}

async function refreshRow(service) {
  const html = await fetchText("/fragment/row/" + encodeURIComponent(service));
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const fresh = template.content.firstElementChild;
  const old = document.getElementById("row-" + service);
  if (old) {
    const before = [...old.querySelectorAll("td")].map((td) => td.dataset.artifact);
    old.replaceWith(fresh);
    fresh.querySelectorAll("td").forEach((td, i) => {
      if (td.dataset.artifact !== before[i]) flash(td);
    });
  } else {
    document.getElementById("rows").appendChild(fresh);
  }
  applyFilter();
}

async function refreshAll() {
  if (live === "matrix") {
    document.getElementById("rows").innerHTML = await fetchText("/fragment/rows");
    applyFilter();
  } else if (live === "service") {
    await refreshService();
  }
}

async function refreshService() {
  const sections = document.getElementById("sections");
  const url = "/fragment/service/" + encodeURIComponent(sections.dataset.service) + "?page=" + sections.dataset.page;
  sections.innerHTML = await fetchText(url);
}

function follow() {
  if (live !== "matrix" && live !== "service") {
    connection.hidden = true;
    return;
  }
  let broken = false;
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    setConnection("live", "live");
    if (broken) {
      broken = false;
      refreshAll().catch(() => {});
    }
  });
  events.addEventListener("error", () => {
    broken = true;
    setConnection("disconnected", "disconnected: reconnecting…");
  });
  // This stream fell behind the server's events: some were missed.
  events.addEventListener("resync", () => {
    refreshAll().catch(() => {});
  });
  events.addEventListener("change", (message) => {
    const event = JSON.parse(message.data);
    // A reconciliation error of a whole environment, set or cleared: the
    // matrix's column heads show it.
    if (event.kind === "environment" && live === "matrix") {
      location.reload();
      return;
    }
    if (!event.service) return;
    if (live === "matrix") {
      refreshRow(event.service).catch(() => {});
    } else if (document.getElementById("sections").dataset.service === event.service) {
      refreshService().catch(() => {});
    }
  });
}

// Ages ("3 h ago") go on counting without a reload.
function tickAges() {
  const now = Date.now() / 1000;
  for (const element of document.querySelectorAll("[data-time]")) {
    const seconds = Number(element.dataset.time);
    if (!seconds) continue;
    const elapsed = Math.max(0, now - seconds);
    element.textContent =
      elapsed < 60 ? "just now" :
      elapsed < 3600 ? Math.floor(elapsed / 60) + " min ago" :
      elapsed < 86400 ? Math.floor(elapsed / 3600) + " h ago" :
      Math.floor(elapsed / 86400) + " d ago";
  }
}

document.getElementById("filter")?.addEventListener("input", applyFilter);
setInterval(tickAges, 30000);
follow();
