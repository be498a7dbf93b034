// Shop-floor terminal behaviour: keyboard-wedge scanning anywhere (also while a quantity
// field has focus), an on-screen keypad, data freshness and a clear "server unreachable"
// state; a failed tap is sent again with the same one-time token, so it is never lost and
// never applied twice.
(function () {
  "use strict";
  const body = document.body;

  // A wedge scanner types a burst far faster than any person. The burst is judged by its
  // average pace, so one late key (a busy page, a slow terminal) does not break a scan.
  const SCAN_GAP_MS = 40;   // average time per key of a scan, at most
  const PAUSE_MS = 300;     // a pause this long starts a new burst

  // --- Scanner: a fast burst of keys ending in Enter. Outside fields it opens the scanned
  // code; inside a keypad field too, restoring what the field held before the burst.
  let burst = "", firstKey = 0, lastKey = -Infinity, burstField = null, fieldBefore = "";
  function isTextField(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    const inField = isTextField(target);
    if (inField && !target.matches("[data-keypad]")) return;  // badge/PIN fields type normally
    const now = event.timeStamp || performance.now();  // when the key came, not when handled
    if (now - lastKey > PAUSE_MS) {
      burst = "";
      firstKey = now;
      burstField = inField ? target : null;
      fieldBefore = inField ? target.value : "";
    }
    lastKey = now;
    if (event.key === "Enter") {
      const code = burst;
      const pace = code.length ? (now - firstKey) / code.length : Infinity;
      burst = "";
      lastKey = -Infinity;
      const isScan = code.length >= 3 && pace <= SCAN_GAP_MS &&
        (!inField || !/^[0-9.,]+$/.test(code));
      if (isScan && !(inField && target.id === "badge")) {
        event.preventDefault();
        event.stopPropagation();
        if (burstField) burstField.value = fieldBefore;
        window.location.href = body.dataset.scanUrl + "?code=" + encodeURIComponent(code);
      }
    } else if (event.key.length === 1) {
      burst += event.key;
    }
  }, true);

  // --- Sign-in: Enter after a scanned (or typed) badge moves on to the PIN instead of
  // sending the form without one.
  document.addEventListener("keydown", function (event) {
    const field = event.target;
    if (event.key !== "Enter" || !field.matches || !field.matches("input[data-next]")) return;
    const next = document.getElementById(field.dataset.next);
    if (next && !next.value) {
      event.preventDefault();
      next.focus();
    }
  });

  // --- Keypad: fills the input it belongs to (or the keypad input last focused).
  let lastInput = null;
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("input[data-keypad]")) lastInput = event.target;
  });
  document.addEventListener("click", function (event) {
    const key = event.target.closest && event.target.closest("[data-key]");
    if (!key) return;
    const pad = key.closest("[data-keypad-for]");
    const input = (lastInput && document.body.contains(lastInput)) ? lastInput : document.getElementById(pad.dataset.keypadFor);
    if (!input) return;
    const k = key.dataset.key;
    if (k === "back") input.value = input.value.slice(0, -1);
    else if (k === "clear") input.value = "";
    else input.value += k;
    input.focus();
  });

  // --- Freshness and connection state: only where the screen shows live data, or after a
  // tap could not be sent.
  const fresh = document.getElementById("fresh");
  const offline = document.getElementById("offline");
  const live = document.querySelector("[data-live]") !== null;
  let lastOk = Date.now(), failedForm = null, retryTimer = null, sendFailed = false;
  function tick() {
    if (!fresh || !live) return;
    const age = Math.round((Date.now() - lastOk) / 1000);
    fresh.textContent = fresh.dataset.freshLabel + " " + age + " " + fresh.dataset.agoLabel;
    if (age > 6 && offline) offline.hidden = false;
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.xhr && event.detail.xhr.status > 0) {
      lastOk = Date.now();
      sendFailed = false;
      if (offline) offline.hidden = true;
      if (failedForm && event.detail.elt === failedForm) { failedForm = null; clearTimeout(retryTimer); }
    }
  });
  function unreachable(event) {
    sendFailed = true;
    if (offline) offline.hidden = false;
    const source = event.detail.elt;
    if (source && source.tagName === "FORM") {
      // Keep the tap: send the same form (same token) again until the server answers.
      failedForm = source;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () {
        if (failedForm && document.body.contains(failedForm)) htmx.trigger(failedForm, "submit");
      }, 3000);
    }
  }
  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);
  document.addEventListener("htmx:configRequest", function (event) { event.detail.timeout = 8000; });
  tick();
})();
