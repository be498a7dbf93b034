// The plant board: how fresh the data is, and a clear banner when the server does not answer
// (the board keeps polling and recovers by itself).
(function () {
  "use strict";
  const fresh = document.getElementById("fresh");
  const offline = document.getElementById("offline");
  let lastOk = Date.now();
  function tick() {
    const age = Math.round((Date.now() - lastOk) / 1000);
    if (fresh) fresh.textContent = fresh.dataset.freshLabel + " " + age + " " + fresh.dataset.agoLabel;
    if (offline) offline.hidden = age <= 6;
  }
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.xhr && event.detail.xhr.status >= 200 && event.detail.xhr.status < 400) {
      lastOk = Date.now();
      tick();
    }
  });
  document.addEventListener("htmx:configRequest", function (event) { event.detail.timeout = 5000; });
  setInterval(tick, 1000);
  tick();
})();
