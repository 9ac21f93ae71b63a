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

// Redaction editor on the approval form: boxes (drag) and polygons (click corners) drawn over a
// frame of a clip, in relative coordinates (0..1) like the server expects. The shapes go into
// the hidden "regions"/"keep" fields as JSON; the server validates them strictly. Keyboard:
// the typed box fields (with "Add this box"), or arrows + Enter on the drawing area.
(function () {
  const tools = document.getElementById("redact-tools");
  if (!tools) return;
  tools.hidden = false;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("redact-canvas");
  const frame = document.getElementById("redact-frame");
  const stage = frame.parentElement;
  const summary = document.getElementById("redact-summary");
  const status = document.getElementById("redact-preview-status");
  const previewButton = document.getElementById("redact-preview");
  const form = document.getElementById("approve-form");
  const shapes = { regions: loadShapes("regions"), keep: loadShapes("keep") };
  let draft = [], drag = null, cursor = [0.5, 0.5], frameUrl = null;

  function loadShapes(name) {
    // shapes drawn before a refused approval come back in the hidden field
    try {
      const value = JSON.parse(document.getElementById(name).value || "[]");
      return Array.isArray(value) ? value : [];
    } catch (e) { return []; }
  }
  function round(v) { return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000; }
  function kind() { return form.querySelector("input[name=draw_kind]:checked").value; }
  function box(x0, y0, x1, y1) {
    const l = Math.min(x0, x1), r = Math.max(x0, x1), t = Math.min(y0, y1), b = Math.max(y0, y1);
    return [[l, t], [r, t], [r, b], [l, b]].map(function (p) { return [round(p[0]), round(p[1])]; });
  }
  function poly(points, cls, open) {
    const p = document.createElementNS(NS, open ? "polyline" : "polygon");
    p.setAttribute("points", points.map(function (pt) { return pt[0] + "," + pt[1]; }).join(" "));
    p.setAttribute("class", cls);
    svg.appendChild(p);
  }
  function save() {
    ["regions", "keep"].forEach(function (n) {
      document.getElementById(n).value = shapes[n].length ? JSON.stringify(shapes[n]) : "";
    });
  }
  function draw() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    ["regions", "keep"].forEach(function (n) { shapes[n].forEach(function (s) { poly(s, n, false); }); });
    if (drag) poly(box(drag[0], drag[1], drag[2], drag[3]), "draft", false);
    if (draft.length) poly(draft, "draft", true);
    const c = document.createElementNS(NS, "circle");
    c.setAttribute("cx", cursor[0]); c.setAttribute("cy", cursor[1]); c.setAttribute("r", 0.008);
    c.setAttribute("class", "cursor"); svg.appendChild(c);
    summary.textContent = "Redacted areas: " + shapes.regions.length + " · kept areas: " + shapes.keep.length +
      (draft.length ? " · unfinished polygon: " + draft.length + " corner(s)" : "");
    save();
    document.dispatchEvent(new Event("doorbell:choices"));
  }
  function at(ev) {
    const r = svg.getBoundingClientRect();
    return [round((ev.clientX - r.left) / r.width), round((ev.clientY - r.top) / r.height)];
  }
  svg.addEventListener("pointerdown", function (ev) {
    const p = at(ev); drag = [p[0], p[1], p[0], p[1]]; svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!drag) return; const p = at(ev); drag[2] = p[0]; drag[3] = p[1]; draw();
  });
  svg.addEventListener("pointerup", function (ev) {
    if (!drag) return;
    const d = drag; drag = null; cursor = at(ev);
    if (Math.abs(d[2] - d[0]) > 0.01 && Math.abs(d[3] - d[1]) > 0.01) {
      shapes[kind()].push(box(d[0], d[1], d[2], d[3])); draft = [];
    } else {
      draft.push(cursor); // a click: one polygon corner
    }
    draw();
  });
  svg.addEventListener("keydown", function (ev) {
    const step = ev.shiftKey ? 0.05 : 0.01;
    if (ev.key === "ArrowLeft") cursor[0] = round(cursor[0] - step);
    else if (ev.key === "ArrowRight") cursor[0] = round(cursor[0] + step);
    else if (ev.key === "ArrowUp") cursor[1] = round(cursor[1] - step);
    else if (ev.key === "ArrowDown") cursor[1] = round(cursor[1] + step);
    else if (ev.key === "Enter") draft.push([cursor[0], cursor[1]]);
    else if (ev.key === "Escape") draft = [];
    else return;
    ev.preventDefault(); draw();
  });
  document.getElementById("redact-close").addEventListener("click", function () {
    if (draft.length < 3) { summary.textContent = "A polygon needs at least 3 corners."; return; }
    shapes[kind()].push(draft); draft = []; draw();
  });
  document.getElementById("redact-undo").addEventListener("click", function () {
    if (draft.length) draft.pop(); else if (shapes[kind()].length) shapes[kind()].pop();
    draw();
  });
  document.getElementById("redact-clear").addEventListener("click", function () {
    shapes.regions = []; shapes.keep = []; draft = []; draw();
  });
  const boxFields = ["box_x0", "box_y0", "box_x1", "box_y1"].map(function (id) { return document.getElementById(id); });
  const addBox = document.getElementById("box-add");
  addBox.hidden = false;
  addBox.addEventListener("click", function () {
    const v = boxFields.map(function (f) { return parseFloat(f.value); });
    if (v.some(function (x) { return !(x >= 0 && x <= 1); }) || !(v[0] < v[2] && v[1] < v[3])) {
      summary.textContent = "A box needs four numbers from 0 to 1, left < right and top < bottom.";
      return;
    }
    const target = document.getElementById("box_kind").value === "keep" ? "keep" : "regions";
    shapes[target].push(box(v[0], v[1], v[2], v[3]));
    boxFields.forEach(function (f) { f.value = ""; });
    draw();
  });

  function previewQuery() {
    const q = new URLSearchParams();
    q.set("clip", document.getElementById("preview_clip").value);
    q.set("at", document.getElementById("preview_at").value || "0");
    ["regions", "keep", "redact_method", "box_x0", "box_y0", "box_x1", "box_y1", "box_kind"].forEach(function (n) {
      const field = document.getElementById(n);
      if (field && field.value) q.set(n, field.value);
    });
    if (document.getElementById("redact_faces").checked) q.set("redact_faces", "on");
    return q;
  }
  async function preview(attempt) {
    attempt = typeof attempt === "number" ? attempt : 0;
    previewButton.disabled = true;
    status.textContent = "Making the preview…";
    try {
      const response = await fetch(tools.dataset.previewUrl + "?" + previewQuery().toString(),
        { credentials: "same-origin", cache: "no-store" });
      if (response.status === 429 && attempt < 5) {
        // the preview asked for by the page before this one is still being made
        setTimeout(function () { preview(attempt + 1); }, 1500);
        return;
      }
      if (!response.ok) { status.textContent = "Preview refused: " + (await response.text()); return; }
      const blob = await response.blob();
      if (frameUrl) URL.revokeObjectURL(frameUrl);
      frameUrl = URL.createObjectURL(blob);
      frame.src = frameUrl;
      status.textContent = "Preview shows the export's redaction (faces as detected in this frame).";
    } catch (e) {
      status.textContent = "Preview failed: " + e;
    } finally {
      previewButton.disabled = false;
    }
  }
  frame.addEventListener("load", function () {
    if (frame.naturalWidth && frame.naturalHeight) stage.style.aspectRatio = frame.naturalWidth + " / " + frame.naturalHeight;
  });
  previewButton.addEventListener("click", function () { preview(0); });
  document.getElementById("preview_clip").addEventListener("change", function () { preview(0); });
  draw();
  preview(0);
})();

// The approval's clip list and summary: select all / none, and one sentence of what will be
// shared ("2 clips, 54 s, faces blurred, 1 region redacted, to ..., expires in 3 days, ...").
(function () {
  const form = document.getElementById("approve-form");
  if (!form) return;
  const boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=clip]"));
  const summary = document.getElementById("approve-summary");
  const tools = form.querySelector(".select-tools");
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function count(id) {
    try { const v = JSON.parse(document.getElementById(id).value || "[]"); return Array.isArray(v) ? v.length : 0; }
    catch (e) { return 0; }
  }
  function update() {
    const picked = boxes.filter(function (b) { return b.checked; });
    let text;
    if (!picked.length) {
      text = "No clip chosen yet: tick the clips to share.";
    } else {
      const seconds = picked.reduce(function (s, b) { return s + parseFloat(b.dataset.duration || "0"); }, 0);
      const parts = [plural(picked.length, "clip") + ", " + Math.round(seconds) + " s"];
      const fill = document.getElementById("redact_method").value === "fill";
      if (document.getElementById("redact_faces").checked) parts.push(fill ? "faces filled" : "faces blurred");
      const typed = ["box_x0", "box_y0", "box_x1", "box_y1"].every(function (id) { return document.getElementById(id).value !== ""; });
      const typedKeep = document.getElementById("box_kind").value === "keep";
      const regions = count("regions") + (typed && !typedKeep ? 1 : 0);
      const keep = count("keep") + (typed && typedKeep ? 1 : 0);
      if (regions) parts.push(plural(regions, "region") + " redacted");
      if (keep) parts.push(plural(keep, "kept area"));
      if (parts.length === 1) parts.push("no redaction");
      parts.push("to " + form.dataset.requester);
      parts.push("expires in " + (document.getElementById("days").value || "?") + " days");
      parts.push(plural(parseInt(document.getElementById("download_limit").value || "0", 10) || 0, "download"));
      text = parts.join(", ") + ".";
    }
    summary.textContent = "";
    const p = document.createElement("p");
    p.textContent = text;
    summary.appendChild(p);
  }
  if (tools && boxes.length) {
    tools.hidden = false;
    document.getElementById("select-all").addEventListener("click", function () { boxes.forEach(function (b) { b.checked = true; }); update(); });
    document.getElementById("select-none").addEventListener("click", function () { boxes.forEach(function (b) { b.checked = false; }); update(); });
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  document.addEventListener("doorbell:choices", update);
  update();
})();

// Copy buttons (the invitation link): the text of the element named by data-copy.
(function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    const status = button.parentElement.querySelector(".copy-status");
    button.addEventListener("click", async function () {
      const text = document.getElementById(button.dataset.copy).textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        if (status) status.textContent = "Copied.";
      } catch (e) {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        if (status) status.textContent = "Selected: press Ctrl+C (or long-press and Copy).";
      }
    });
  });
})();
