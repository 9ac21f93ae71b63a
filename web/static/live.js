// Live view: long-poll the newest frame, follow rings/motion over server-sent events,
// notify (sound can be switched off; browser notifications on request).
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    const img = document.getElementById("live-image");
    if (!img) return;
    const status = document.getElementById("live-status");
    const recording = document.getElementById("recording");
    const list = document.getElementById("live-events");
    const soundBox = document.getElementById("sound-on");
    const notifyButton = document.getElementById("notify-enable");
    const SOUND_KEY = "doorbell.ringSound";
    let seq = 0, previousUrl = null, stopped = false;

    soundBox.checked = localStorage.getItem(SOUND_KEY) !== "off";
    soundBox.addEventListener("change", function () {
      localStorage.setItem(SOUND_KEY, soundBox.checked ? "on" : "off");
    });
    if (!("Notification" in window) || Notification.permission !== "default") notifyButton.hidden = true;
    notifyButton.addEventListener("click", function () {
      Notification.requestPermission().then(function () { notifyButton.hidden = true; });
    });

    function chime() {
      if (!soundBox.checked) return;
      try {
        const audio = new (window.AudioContext || window.webkitAudioContext)();
        [660, 880].forEach(function (freq, i) {
          const osc = audio.createOscillator(), gain = audio.createGain();
          osc.frequency.value = freq;
          gain.gain.setValueAtTime(0.2, audio.currentTime + i * 0.35);
          gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + i * 0.35 + 0.3);
          osc.connect(gain); gain.connect(audio.destination);
          osc.start(audio.currentTime + i * 0.35); osc.stop(audio.currentTime + i * 0.35 + 0.32);
        });
      } catch (e) { /* no audio: the notification still shows */ }
    }

    function nextFrame() {
      if (stopped) return;
      fetch(img.dataset.frameUrl + "?after=" + seq, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { stopped = true; location.reload(); return null; }
          if (!r.ok) { status.textContent = "Waiting for the camera…"; return null; }
          seq = parseInt(r.headers.get("X-Frame-Seq") || "0", 10);
          return r.blob();
        })
        .then(function (blob) {
          if (blob) {
            const url = URL.createObjectURL(blob);
            img.src = url;
            if (previousUrl) URL.revokeObjectURL(previousUrl);
            previousUrl = url;
            status.textContent = "Live";
            img.dataset.seq = String(seq);
          }
          setTimeout(nextFrame, blob ? 1000 / parseFloat(img.dataset.fps || "4") : 1000);
        })
        .catch(function () { setTimeout(nextFrame, 2000); });
    }

    // the device's zone and the 24-hour clock, like every other page (body data-time-zone)
    function clockNow() {
      const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
      if (document.body.dataset.timeZone) options.timeZone = document.body.dataset.timeZone;
      try {
        return new Intl.DateTimeFormat("en-GB", options).format(new Date());
      } catch (e) {  // a zone this browser does not know
        delete options.timeZone;
        return new Intl.DateTimeFormat("en-GB", options).format(new Date());
      }
    }

    function addEvent(text) {
      const li = document.createElement("li");
      li.textContent = clockNow() + " — " + text;
      list.insertBefore(li, list.firstChild);
      while (list.children.length > 20) list.removeChild(list.lastChild);
    }

    const source = new EventSource(img.dataset.eventsUrl);
    source.addEventListener("ring", function () {
      addEvent("Someone rang the doorbell");
      chime();
      if ("Notification" in window && Notification.permission === "granted") {
        new Notification("Doorbell", { body: "Someone is at the door", tag: "doorbell-ring" });
      }
      document.body.dataset.lastRing = String(Date.now());
    });
    source.addEventListener("motion_start", function () { recording.hidden = false; addEvent("Motion: recording"); });
    source.addEventListener("motion_stop", function () { recording.hidden = true; addEvent("Motion ended"); });
    source.addEventListener("camera_fault", function () { addEvent("Camera fault"); });
    source.addEventListener("camera_ok", function () { addEvent("Camera back"); });
    source.addEventListener("storage_full", function () { addEvent("Disk full: deleting the oldest clips to keep recording"); });
    source.addEventListener("storage_ok", function () { addEvent("Disk space recovered"); });
    fetch(img.dataset.stateUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (s) { recording.hidden = !s.recording; }).catch(function () {});
    nextFrame();
  });
})();
