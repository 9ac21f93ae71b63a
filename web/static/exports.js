// Bundle progress on the owner's review page: poll while the bundle is being built.
"use strict";
(function () {
  const box = document.getElementById("bundle");
  if (!box) return;
  const state = document.getElementById("bundle-state");
  const bar = document.getElementById("bundle-progress");
  async function poll() {
    try {
      const response = await fetch(box.dataset.progressUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      state.textContent = data.error ? "failed: " + data.error : data.bundle_state;
      if (typeof data.percent === "number") bar.value = data.percent;
      if (data.bundle_state === "building" && !data.error) setTimeout(poll, 1000);
      else if (data.finished) window.location.reload();
    } catch (e) {
      setTimeout(poll, 3000);
    }
  }
  if (state.textContent.trim() === "building") poll();
})();
