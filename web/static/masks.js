// Settings: draw zones, motion masks and privacy masks as polygons over a live snapshot.
// Coordinates are relative (0..1), like the config file. Keyboard: arrows move a cursor,
// Enter adds a corner, Escape drops the unfinished polygon.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    const svg = document.getElementById("mask-canvas");
    if (!svg) return;
    const NS = "http://www.w3.org/2000/svg";
    const snapshot = document.getElementById("mask-snapshot");
    const summary = document.getElementById("mask-summary");
    const layers = ["motion_zones", "motion_masks", "privacy_masks"];
    const data = {};
    layers.forEach(function (name) {
      try { data[name] = JSON.parse(document.getElementById(name).value || "[]"); } catch (e) { data[name] = []; }
    });
    let draft = [], cursor = [0.5, 0.5];

    fetch(snapshot.dataset.src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.blob() : null; })
      .then(function (blob) { if (blob) snapshot.src = URL.createObjectURL(blob); })
      .catch(function () {});

    function layer() { return document.querySelector("input[name=layer]:checked").value; }
    function round(v) { return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000; }
    function save() { layers.forEach(function (n) { document.getElementById(n).value = JSON.stringify(data[n]); }); }
    function poly(points, cls) {
      const p = document.createElementNS(NS, draft === points ? "polyline" : "polygon");
      p.setAttribute("points", points.map(function (pt) { return pt[0] + "," + pt[1]; }).join(" "));
      p.setAttribute("class", cls);
      svg.appendChild(p);
    }
    function draw() {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      layers.forEach(function (n) { data[n].forEach(function (pg) { poly(pg.points, n); }); });
      if (draft.length) poly(draft, "draft");
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", cursor[0]); c.setAttribute("cy", cursor[1]); c.setAttribute("r", 0.008);
      c.setAttribute("class", "cursor"); svg.appendChild(c);
      summary.textContent = layers.map(function (n) { return n.replace("_", " ") + ": " + data[n].length; }).join(" · ") +
        (draft.length ? " · unfinished polygon: " + draft.length + " corner(s)" : "");
      save();
    }
    function addPoint(x, y) { draft.push([round(x), round(y)]); draw(); }
    svg.addEventListener("click", function (ev) {
      const box = svg.getBoundingClientRect();
      cursor = [(ev.clientX - box.left) / box.width, (ev.clientY - box.top) / box.height];
      addPoint(cursor[0], cursor[1]);
    });
    svg.addEventListener("keydown", function (ev) {
      const step = ev.shiftKey ? 0.05 : 0.01;
      if (ev.key === "ArrowLeft") cursor[0] = round(cursor[0] - step);
      else if (ev.key === "ArrowRight") cursor[0] = round(cursor[0] + step);
      else if (ev.key === "ArrowUp") cursor[1] = round(cursor[1] - step);
      else if (ev.key === "ArrowDown") cursor[1] = round(cursor[1] + step);
      else if (ev.key === "Enter") { addPoint(cursor[0], cursor[1]); ev.preventDefault(); return; }
      else if (ev.key === "Escape") draft = [];
      else return;
      ev.preventDefault(); draw();
    });
    document.getElementById("mask-close").addEventListener("click", function () {
      if (draft.length < 3) { summary.textContent = "A polygon needs at least 3 corners."; return; }
      data[layer()].push({ points: draft }); draft = []; draw();
    });
    document.getElementById("mask-undo").addEventListener("click", function () { draft.pop(); draw(); });
    document.getElementById("mask-clear").addEventListener("click", function () { data[layer()] = []; draft = []; draw(); });
    draw();
  });
})();
