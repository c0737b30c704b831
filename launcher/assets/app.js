// kojibox's browser entry. `kojibox dashboard` opens this page as /#login=CODE: the one-time
// code is traded for a session secret that lives in this tab's sessionStorage only and goes
// out as an `Authorization: Session …` header, never as a cookie (cookies reach every server
// on this host, whatever its port). The address bar is cleaned before anything else.
"use strict";

const KEY = "kojibox.session";

function show(text) {
  document.getElementById("status").textContent = text;
}

async function signIn() {
  const code = new URLSearchParams(location.hash.slice(1)).get("login");
  if (!code) return;
  history.replaceState(null, "", "/");
  const answer = await fetch("/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ login: code }),
    credentials: "omit",
    cache: "no-store",
  });
  if (answer.ok) sessionStorage.setItem(KEY, (await answer.json()).session);
}

async function rpc(method, params) {
  const answer = await fetch("/rpc", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: "Session " + sessionStorage.getItem(KEY),
    },
    body: JSON.stringify({ method, params: params || {} }),
    credentials: "omit",
    cache: "no-store",
  });
  if (answer.status === 401) {
    sessionStorage.removeItem(KEY);
    throw new Error("signed out");
  }
  return answer.json();
}

async function main() {
  await signIn();
  if (!sessionStorage.getItem(KEY)) {
    show("Not signed in. Run `kojibox dashboard` to open this page with a login.");
    return;
  }
  try {
    const answer = await rpc("services.list");
    const services = answer.result || [];
    show("Signed in: " + services.length + " service(s).");
    const list = document.getElementById("services");
    for (const s of services) {
      const item = document.createElement("li");
      item.textContent = s.id + ": " + s.state;
      list.appendChild(item);
    }
  } catch (e) {
    show("Not signed in (" + e.message + "). Run `kojibox dashboard` again.");
  }
}

main();
