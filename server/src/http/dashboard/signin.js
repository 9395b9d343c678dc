// The page header's sign-in corner: who is signed in, and a sign-out
// button (a form that posts to /logout, which ends the session on the
// server). Nothing is shown on a server that needs no sign-in.
"use strict";

(async function showViewer() {
  const header = document.querySelector("body > header");
  if (!header) return;
  let viewer;
  try {
    const response = await fetch("/session", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    viewer = await response.json();
  } catch {
    return;
  }
  if (!viewer.signed_in) return;
  const corner = document.createElement("div");
  corner.id = "viewer";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = viewer.name;
  if (viewer.email) who.title = viewer.email;
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/logout";
  const button = document.createElement("button");
  button.type = "submit";
  button.id = "sign-out";
  button.textContent = "Sign out";
  form.append(button);
  corner.append("Signed in as ", who, form);
  header.append(corner);
})();
