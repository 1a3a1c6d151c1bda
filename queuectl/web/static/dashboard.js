// queuectl dashboard: keep the page's live region current without a full reload.
// Every few seconds the page is fetched again (same URL, same cookies) and the new
// #live region replaces the old one. The server renders every value as escaped text,
// and the Content-Security-Policy forbids inline script, so nothing here can run
// markup from the store. Without this script every page still works: reload it.
(function () {
  "use strict";

  function parseSeconds(live) {
    var seconds = parseFloat(live.getAttribute("data-refresh-seconds"));
    return seconds > 0 ? seconds : 0;
  }

  function busy(live) {
    // A button being pressed or a field in use inside the region: do not swap it away.
    var active = document.activeElement;
    return active && active !== document.body && live.contains(active) &&
      active.matches(":active, input, select, textarea");
  }

  function start() {
    var live = document.getElementById("live");
    if (!live) return;
    var seconds = parseSeconds(live);
    if (!seconds) return;
    var state = document.getElementById("refresh-state");
    var inFlight = false;

    function refresh() {
      if (inFlight || document.hidden || busy(live)) return;
      inFlight = true;
      fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Queuectl-Refresh": "1", "Accept": "text/html" },
        cache: "no-store",
        redirect: "follow"
      }).then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error("HTTP " + response.status + (response.redirected ? " (redirected)" : ""));
        }
        return response.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        if (!fresh) throw new Error("no live region in the answer");
        live.replaceWith(document.importNode(fresh, true));
        live = document.getElementById("live");
        live.setAttribute("data-refreshed", String(Date.now()));
        if (state) state.textContent = "";
      }).catch(function (error) {
        if (state) state.textContent = " (last update failed: " + error.message + ")";
      }).then(function () {
        inFlight = false;
      });
    }

    window.setInterval(refresh, seconds * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
