// The dashboard's one script: the matrix's filter (by name and by state,
// kept in the URL) and its counts, copying ids, exact times on focus, and
// live updates. It follows the server's event stream (Server-Sent Events
// at /events): when an event names a service, it fetches that service's
// row (or the service page's or the comparison's sections) and swaps it
// in; when the stream breaks the page dims what it shows and says since
// when, the browser reconnects by itself, and on reconnecting everything
// shown is fetched again, since events may have been missed meanwhile.
// The filter and the counts follow the same rules as the server's
// (glance.rs), which renders the first page with them.
"use strict";

const live = document.body.dataset.live;
const connection = document.getElementById("connection");

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

// --- The matrix: filter and counts -------------------------------------

function inState(td, state) {
  return state === "promotable" ? td.classList.contains("promotable") : td.dataset.state === state;
}

function filterValues() {
  const value = (id) => document.getElementById(id)?.value ?? "";
  return { name: value("filter").trim().toLowerCase(), state: value("state"), env: value("state-env") };
}

function applyFilter() {
  const rows = [...document.querySelectorAll("#rows tr")];
  if (!document.getElementById("filter")) return;
  const { name, state, env } = filterValues();
  let shown = 0;
  for (const row of rows) {
    let keep = row.dataset.service.toLowerCase().includes(name);
    if (keep && state) {
      keep = [...row.querySelectorAll("td")].some(
        (td) => (!env || td.dataset.environment === env) && inState(td, state));
    }
    row.hidden = !keep;
    if (keep) shown++;
  }
  const filtered = name !== "" || state !== "";
  document.getElementById("shown").textContent =
    filtered ? shown + " of " + rows.length + " services shown" : "";
}

// The filter goes in the URL, so that a view can be shared.
function keepFilterInUrl() {
  const { state, env } = filterValues();
  const name = document.getElementById("filter").value.trim();
  const params = new URLSearchParams();
  if (name) params.set("q", name);
  if (state) params.set("state", state);
  if (state && env) params.set("env", env);
  const query = params.toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
}

function filterChanged() {
  applyFilter();
  keepFilterInUrl();
}

function recount() {
  const headers = [...document.querySelectorAll("#matrix thead th[data-environment]")];
  const rows = [...document.querySelectorAll("#rows tr")];
  headers.forEach((th, i) => {
    const cells = rows.map((tr) => tr.querySelectorAll("td")[i]).filter(Boolean);
    const reporting = th.dataset.reporting === "true" || cells.some((td) => td.dataset.state);
    th.dataset.reporting = String(reporting);
    for (const chip of th.querySelectorAll(".count")) {
      const n = cells.filter((td) => inState(td, chip.dataset.state)).length;
      chip.dataset.count = String(n);
      chip.querySelector(".n").textContent = String(n);
      chip.hidden = n === 0 || (chip.dataset.state !== "promotable" && !reporting);
    }
    const unreported = th.querySelector(".unreported");
    if (unreported) unreported.hidden = reporting;
  });
}

function matrixChanged() {
  recount();
  applyFilter();
}

// A count in a column header filters by its state there, in place.
document.addEventListener("click", (event) => {
  const chip = event.target.closest("a.count");
  if (!chip || !document.getElementById("state")) return;
  event.preventDefault();
  document.getElementById("state").value = chip.dataset.state;
  document.getElementById("state-env").value = chip.closest("th").dataset.environment;
  filterChanged();
});

// --- Copying ids, exact times --------------------------------------------

function toast(text) {
  let element = document.getElementById("toast");
  if (!element) {
    element = document.createElement("div");
    element.id = "toast";
    element.setAttribute("role", "status");
    document.body.appendChild(element);
  }
  element.textContent = text;
  element.hidden = false;
  clearTimeout(element.timer);
  element.timer = setTimeout(() => { element.hidden = true; }, 2500);
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http to another host): the old way.
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied " + text);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.id");
  if (!button) return;
  const id = button.textContent;
  copy(id).catch(() => toast("Could not copy " + id));
});

// A time's exact value, on focus (hovering shows its title).
const tip = document.createElement("div");
tip.id = "tip";
tip.hidden = true;
document.body.appendChild(tip);
document.addEventListener("focusin", (event) => {
  const target = event.target;
  const time = target.matches?.("time[title]") ? target : target.querySelector?.("time[title]");
  if (!time) return;
  tip.textContent = time.title;
  tip.hidden = false;
  const box = target.getBoundingClientRect();
  tip.style.top = Math.min(box.bottom + 4, innerHeight - tip.offsetHeight - 4) + "px";
  tip.style.left = Math.max(4, Math.min(box.left, innerWidth - tip.offsetWidth - 4)) + "px";
});
document.addEventListener("focusout", () => { tip.hidden = true; });

// --- Live updates ------------------------------------------------------------

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
  matrixChanged();
}

async function refreshAll() {
  if (live === "matrix") {
    document.getElementById("rows").innerHTML = await fetchText("/fragment/rows");
    matrixChanged();
  } else if (live === "service" || live === "compare") {
    await refreshSections();
  }
}

async function refreshSections() {
  const sections = document.getElementById("sections");
  const service = encodeURIComponent(sections.dataset.service);
  const url = live === "service"
    ? "/fragment/service/" + service + "?page=" + sections.dataset.page
    : "/fragment/compare/" + service + "?" + new URLSearchParams({
      from: sections.dataset.from, to: sections.dataset.to, namespace: sections.dataset.namespace,
    });
  sections.innerHTML = await fetchText(url);
}

function follow() {
  if (live !== "matrix" && live !== "service" && live !== "compare") {
    connection.hidden = true;
    return;
  }
  let broken = false;
  let since = null;
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    setConnection("live", "live");
    connection.title = "";
    since = null;
    document.body.classList.remove("stale");
    if (broken) {
      broken = false;
      refreshAll().catch(() => {});
    }
  });
  events.addEventListener("error", () => {
    broken = true;
    since = since ?? new Date();
    document.body.classList.add("stale");
    setConnection("disconnected",
      "disconnected since " + since.toLocaleTimeString() + ": what is shown may be out of date; reconnecting…");
    connection.title = "disconnected since " + since.toString();
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
      refreshSections().catch(() => {});
    }
  });
}

// Ages ("3 h ago") go on counting without a reload.
function tickAges() {
  const now = Date.now() / 1000;
  for (const element of document.querySelectorAll("time[datetime]")) {
    const seconds = Date.parse(element.getAttribute("datetime")) / 1000;
    if (!seconds) continue;
    const elapsed = Math.max(0, now - seconds);
    element.textContent =
      elapsed < 60 ? "just now" :
      elapsed < 3600 ? Math.floor(elapsed / 60) + " min ago" :
      elapsed < 86400 ? Math.floor(elapsed / 3600) + " h ago" :
      Math.floor(elapsed / 86400) + " d ago";
  }
}

for (const id of ["filter", "state", "state-env"]) {
  document.getElementById(id)?.addEventListener(id === "filter" ? "input" : "change", filterChanged);
}
// The form submits only without this script.
document.getElementById("filters")?.addEventListener("submit", (event) => {
  event.preventDefault();
  filterChanged();
});
applyFilter();
setInterval(tickAges, 30000);
follow();
