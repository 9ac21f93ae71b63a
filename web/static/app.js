// doorbell: shared page behaviour. No inline script anywhere (CSP script-src 'self').
// 1. Follow the lock state: when the server locks this session (idle, another tab), go to
//    the unlock page instead of showing stale data.
// 2. Keep the last cosigned audit checkpoint this browser saw in localStorage and ask the
//    server for a consistency proof from it; warn loudly if the log shrank or forked.
"use strict";
(function () {
  const body = document.body;
  const STORE_KEY = "doorbell.cosignedCheckpoint";

  function warn(message) {
    const banner = document.getElementById("log-warning");
    if (!banner) return;
    banner.textContent = "⚠ Audit log warning: " + message +
      " Someone may have rolled back or rewritten the history of this doorbell. Keep this browser's record and investigate.";
    banner.hidden = false;
  }

  function pollLockState() {
    if (body.dataset.unlocked !== "yes") return;
    fetch(body.dataset.sessionUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (state) {
        if (!state.unlocked) {
          window.location.assign(body.dataset.unlockUrl + "?next=" + encodeURIComponent(location.pathname + location.search));
        }
      })
      .catch(function () { /* offline for a moment: try again later */ });
  }

  function checkConsistency() {
    if (body.dataset.unlocked !== "yes") return;
    if (body.dataset.checkpointError) { warn(body.dataset.checkpointError); return; }
    const size = parseInt(body.dataset.checkpointSize || "", 10);
    const root = body.dataset.checkpointRoot;
    if (!root || isNaN(size)) return;
    let stored = null;
    try { stored = JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch (e) { stored = null; }
    if (!stored || typeof stored.size !== "number" || typeof stored.root !== "string") {
      localStorage.setItem(STORE_KEY, JSON.stringify({ size: size, root: root }));
      return;
    }
    if (stored.size === size && stored.root === root) return;
    const url = body.dataset.consistencyUrl + "?size=" + stored.size + "&root=" + encodeURIComponent(stored.root);
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.ok) {
          localStorage.setItem(STORE_KEY, JSON.stringify({ size: answer.new_size, root: answer.new_root }));
        } else {
          warn(answer.message || answer.verdict);  // keep the old record as evidence
        }
      })
      .catch(function () { /* retried on the next page */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    checkConsistency();
    if (body.dataset.unlocked === "yes") setInterval(pollLockState, 10000);
  });
})();
