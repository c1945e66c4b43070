// Small helpers for every page: confirmations, select-all, compare the selected runs, the schedule preview.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var message = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.hasAttribute || !box.hasAttribute("data-select-all")) { return; }
    var form = box.closest("form");
    form.querySelectorAll('input[type=checkbox][name=run]').forEach(function (b) { b.checked = box.checked; });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-compare]");
    if (!button) { return; }
    var ids = Array.prototype.map.call(
      button.closest("form").querySelectorAll('input[name=run]:checked'), function (b) { return b.value; });
    if (ids.length < 2) { window.alert("Select at least two runs to compare."); return; }
    window.location.href = "/compare?runs=" + ids.map(encodeURIComponent).join(",");
  });

  // A <details data-text-url> (the run's manifest) loads its text the first time it is opened.
  document.querySelectorAll("details[data-text-url]").forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (!details.open || details.getAttribute("data-loaded")) { return; }
      details.setAttribute("data-loaded", "1");
      var pre = details.querySelector("pre");
      fetch(details.getAttribute("data-text-url"), {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { return r.text().then(function (text) { return [r.ok, text]; }); })
        .then(function (result) { pre.textContent = result[0] ? result[1] : "The manifest could not be loaded."; });
    });
  });

  // Recurring run form: the next fire times, refreshed as the schedule changes.
  var form = document.getElementById("schedule-form");
  if (form) {
    var timer = null;
    var refresh = function () {
      var data = new FormData(form);
      var query = new URLSearchParams({
        kind: data.get("kind") || "cron", cron: data.get("cron") || "", interval_seconds: data.get("interval_seconds") || ""
      });
      fetch(form.getAttribute("data-preview-url") + "?" + query.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (body) {
          var list = document.getElementById("fire-times");
          var error = document.getElementById("preview-error");
          list.textContent = "";
          (body.times || []).forEach(function (t) { var li = document.createElement("li"); li.textContent = t; list.appendChild(li); });
          error.hidden = !body.error;
          error.textContent = body.error || "";
        });
    };
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  }
})();
