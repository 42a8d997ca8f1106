// Live updates of the dashboard: the page listens to the server-sent events of its own view
// and changes the cells and counts (and, on an App page, the Rollout panel) in place. Every value is set with textContent: nothing the
// hub sends is ever parsed as HTML. EventSource reconnects by itself (the server asks for one
// second) when the dashboard or the hub restarts.
"use strict";
(function () {
  var url = document.body.getAttribute("data-events");
  if (!url || !window.EventSource) { return; }
  var cells = {};
  document.querySelectorAll("[data-key]").forEach(function (el) {
    var k = el.getAttribute("data-key");
    (cells[k] = cells[k] || []).push(el);
  });
  var liveEl = document.getElementById("live");
  var hubEl = document.getElementById("hub");
  var parts = { s: ".s", h: ".h", r: ".r", d: ".d", f: ".f" };
  function setCell(el, c) {
    Object.keys(parts).forEach(function (p) {
      var part = el.querySelector(parts[p]);
      if (part && part.textContent !== c[p]) { part.textContent = c[p]; }
    });
    el.className = "cell " + c.c;
    el.setAttribute("data-updated", String(Date.now()));
  }
  var es = new EventSource(url);
  es.onopen = function () { liveEl.className = "live on"; };
  es.onerror = function () { liveEl.className = "live off"; };
  es.addEventListener("fleet", function (ev) {
    var b = JSON.parse(ev.data);
    if (b.hub) { hubEl.textContent = b.hub; hubEl.hidden = false; } else { hubEl.hidden = true; }
    (b.cells || []).forEach(function (c) {
      (cells[c.k] || []).forEach(function (el) { setCell(el, c); });
    });
    if (typeof b.rollout === "string") {
      // The App page's Rollout panel, rendered and escaped by the dashboard's templates; parsed
      // into an inert document (nothing in it runs, and the CSP allows no inline script).
      var panel = document.getElementById("rollout-panel");
      if (panel) {
        var doc = new DOMParser().parseFromString("<div id=\"rollout-panel\">" + b.rollout + "</div>", "text/html");
        var fresh = doc.getElementById("rollout-panel");
        fresh.setAttribute("data-updated", String(Date.now()));
        panel.replaceWith(document.adoptNode(fresh));
      }
    }
    if (b.counts) {
      Object.keys(b.counts).forEach(function (k) {
        var el = document.querySelector('[data-count="' + k + '"]');
        if (el) { el.textContent = String(b.counts[k]); }
      });
    }
    document.body.setAttribute("data-events-seen", String(Date.now()));
  });
})();
