// Live spawn progress over server-sent events; the page works without this (it refreshes itself).
(function () {
  "use strict";
  var root = document.getElementById("pending");
  if (!root || !window.EventSource) { return; }
  var url = root.getAttribute("data-progress-url");
  if (!url) { return; }
  var bar = document.getElementById("progress-bar");
  var msg = document.getElementById("progress-message");
  var log = document.getElementById("progress-log");
  var title = root.querySelector("h1");
  // The page was rendered with the events stored up to data-after; the stream replays the spawn from its
  // first event, so those arrive again and must not be listed twice.
  var seen = parseInt(root.getAttribute("data-after") || "0", 10) || 0;
  var next = root.getAttribute("data-next");
  var source = new EventSource(url);
  source.onmessage = function (e) {
    var ev;
    try { ev = JSON.parse(e.data); } catch (err) { return; }
    var seq = parseInt(e.lastEventId || "", 10);
    if (!isNaN(seq)) {
      if (seq <= seen) { return; }
      seen = seq;
    }
    if (typeof ev.progress === "number") { bar.value = ev.progress; }
    msg.textContent = ev.message || "";
    var li = document.createElement("li");
    li.textContent = ev.message || "";
    log.appendChild(li);
    if (ev.ready) {
      source.close();
      title.textContent = "Server ready";
      root.setAttribute("data-state", "ready");
      msg.textContent = "Server ready at ";
      var a = document.createElement("a");
      a.href = ev.url; a.id = "open-server"; a.textContent = ev.url;
      msg.appendChild(a);
      // on at once: the server answers now, and any pause here is the user's wait
      if (root.getAttribute("data-no-redirect") === null) {
        window.location.href = next || ev.url;
      }
    } else if (ev.failed) {
      source.close();
      title.textContent = "Spawn failed";
      root.setAttribute("data-state", "failed");
      msg.className = "alert";
      setTimeout(function () { window.location.reload(); }, 1500);
    }
  };
  source.onerror = function () {
    // the stream ended or the network dropped: fall back to reloading the page
    source.close();
    if (root.getAttribute("data-state") === null) {
      setTimeout(function () { window.location.reload(); }, 2000);
    }
  };
})();
