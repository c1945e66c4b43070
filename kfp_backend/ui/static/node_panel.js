// The run page's step list and node panel. A step chosen in the graph (graph.js) or in the step list fires
// the `kfp-node-select` event ({run_id, node_id, pod_id}); the panel then shows the node's pod (inputs,
// outputs, timing, message, artifacts; a retried step's latest attempt, with its attempts) and its log,
// following new lines while the step runs; the graph marks the node. Text only (textContent).
(function () {
  "use strict";
  var panel = document.getElementById("node-panel");
  var list = document.getElementById("step-list");
  if (!panel) { return; }
  var body = document.getElementById("node-body");
  var title = document.getElementById("node-title");
  var logView = document.getElementById("node-log");
  var current = null;  // {run_id, node_id, offset, timer}
  var graphElement = document.getElementById("run-graph");
  var graph = graphElement && graphElement.kfpGraph;  // graph.js, loaded before this script
  var POLL_MS = 1500;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function statusClass(phase) {
    return {Succeeded: "ok", Skipped: "ok", Failed: "bad", Error: "bad", Running: "busy"}[phase] || "wait";
  }
  function statusBadge(phase) {
    return el("span", (phase || "Pending"), "status " + statusClass(phase));
  }
  function table(caption, rows) {
    var section = el("section");
    section.appendChild(el("h3", caption));
    if (!rows.length) { section.appendChild(el("p", "None.", "muted")); return section; }
    var t = el("table", null, "list");
    rows.forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("th", row.name)).setAttribute("scope", "row");
      var td = el("td");
      td.appendChild(el("code", row.value === undefined || row.value === null ? "" : row.value));
      tr.appendChild(td);
      t.appendChild(tr);
    });
    section.appendChild(t);
    return section;
  }

  function showNode(node) {
    title.textContent = "Step " + node.name;
    body.textContent = "";
    var facts = el("dl", null, "facts");
    [["Status", statusBadge(node.phase)], ["Type", node.type], ["Started", node.started_at || "–"],
     ["Finished", node.finished_at || "–"], ["Node id", node.node_id]].forEach(function (pair) {
      facts.appendChild(el("dt", pair[0]));
      var dd = el("dd");
      if (typeof pair[1] === "object") { dd.appendChild(pair[1]); } else { dd.textContent = pair[1]; }
      facts.appendChild(dd);
    });
    if (node.message) { facts.appendChild(el("dt", "Message")); facts.appendChild(el("dd", node.message, "message")); }
    body.appendChild(facts);
    if (node.attempts && node.attempts.length) { body.appendChild(attemptList(node)); }
    body.appendChild(table("Inputs", node.inputs));
    body.appendChild(table("Outputs", node.outputs));
    var artifacts = el("section");
    artifacts.appendChild(el("h3", "Artifacts"));
    if (!node.artifacts.length) { artifacts.appendChild(el("p", "None.", "muted")); }
    var ul = el("ul");
    node.artifacts.forEach(function (a) {
      var li = el("li");
      var link = el("a", "Download " + a.name);
      link.href = a.url;
      li.appendChild(link);
      if (a.path) { li.appendChild(el("span", " (" + a.path + ") ", "muted")); }
      var preview = el("button", "Preview");
      preview.type = "button";
      preview.addEventListener("click", function () {
        var out = li.querySelector("pre") || li.appendChild(el("pre", "Loading…", "yaml preview"));
        fetch(a.preview_url, {credentials: "same-origin"})
          .then(function (r) { return r.json(); })
          .then(function (b) { out.textContent = b.text !== null && b.text !== undefined ? b.text : (b.reason || b.message || "No preview."); });
      });
      li.appendChild(preview);
      ul.appendChild(li);
    });
    artifacts.appendChild(ul);
    body.appendChild(artifacts);
  }

  // A retried step: every attempt, the one shown pressed; another is opened with its own log.
  function attemptList(node) {
    var section = el("section", null, "attempts");
    section.appendChild(el("h3", "Attempts of " + (node.retry_of || node.name) + " (" + node.attempts.length + ")"));
    var ul = el("ul", null, "step-list");
    node.attempts.forEach(function (attempt) {
      var button = el("button");
      button.type = "button";
      button.setAttribute("data-attempt-id", attempt.node_id);
      button.setAttribute("aria-pressed", attempt.shown ? "true" : "false");
      button.appendChild(el("span", "Attempt " + attempt.number + " "));
      button.appendChild(statusBadge(attempt.phase));
      if (attempt.message) { button.title = attempt.message; }
      button.addEventListener("click", function () { select(current.run_id, attempt.node_id); });
      ul.appendChild(el("li")).appendChild(button);
    });
    section.appendChild(ul);
    return section;
  }

  // A node of the graph that has no row yet (not started): what the graph knows of it, asked again while the
  // run is active (once it starts, the panel shows it).
  function showPlanned(state, graphNode) {
    title.textContent = "Step " + graphNode.display_name;
    body.textContent = "";
    var facts = el("dl", null, "facts");
    facts.appendChild(el("dt", "Status"));
    facts.appendChild(el("dd")).appendChild(statusBadge(graphNode.phase || "Pending"));
    body.appendChild(facts);
    var active = graph && graph.data && graph.data.active;
    body.appendChild(el("p", active ? "This step has not started yet." : "This step did not run.", "muted"));
    logView.textContent = active ? "(no output yet)" : "(no log)";
    if (active) { state.timer = setTimeout(function () { refresh(state); }, POLL_MS); }
  }

  function graphNodeOf(nodeId) {
    var data = graph && graph.data;
    return data ? data.nodes.filter(function (n) { return n.id === nodeId || n.pod_id === nodeId; })[0] : null;
  }

  function followLog(state, node) {
    if (current !== state) { return; }
    if (!node.has_log) { logView.textContent = "This node has no log of its own."; return; }
    fetch(node.log_url + "?offset=" + state.offset, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.status === 404) { return {text: "", offset: state.offset, missing: true}; }
        return response.text().then(function (text) {
          return {text: text, offset: parseInt(response.headers.get("X-Log-Offset") || "0", 10)};
        });
      })
      .then(function (chunk) {
        if (current !== state) { return; }
        var atBottom = logView.scrollTop + logView.clientHeight >= logView.scrollHeight - 4;
        if (chunk.missing && state.offset === 0) { logView.textContent = node.active ? "(no output yet)" : "(no log)"; }
        else if (chunk.text) {
          if (state.offset === 0) { logView.textContent = ""; }
          logView.appendChild(document.createTextNode(chunk.text));
        }
        state.offset = chunk.offset || state.offset;
        if (atBottom) { logView.scrollTop = logView.scrollHeight; }
        if (node.active || chunk.text.length >= 262144) {
          state.timer = setTimeout(function () { refresh(state); }, POLL_MS);
        }
      })
      .catch(function () { if (node.active) { retryLater(state); } });
  }

  function refresh(state) {
    if (current !== state) { return; }
    var url = "/ui/api/runs/" + encodeURIComponent(state.run_id) + "/nodes/" + encodeURIComponent(state.node_id);
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.json().then(function (b) { return [response.ok, b]; }); })
      .then(function (result) {
        if (current !== state) { return; }
        if (!result[0]) {
          var planned = graphNodeOf(state.node_id);
          if (planned && planned.planned) { showPlanned(state, planned); return; }
          body.textContent = result[1].error || result[1].message || "This step cannot be shown.";
          return;
        }
        // Shown again only when it changed: a running step's panel keeps its focus and opened previews.
        var shown = JSON.stringify(result[1]);
        if (shown !== state.shown) { state.shown = shown; showNode(result[1]); }
        followLog(state, result[1]);
      })
      .catch(function () { retryLater(state); });
  }

  // A failed request (the server restarting) is made again a little later, while the step is still shown.
  function retryLater(state) {
    if (current === state) { state.timer = setTimeout(function () { refresh(state); }, POLL_MS * 2); }
  }

  function select(runId, nodeId) {
    if (current && current.timer) { clearTimeout(current.timer); }
    current = {run_id: runId, node_id: nodeId, offset: 0, timer: null};
    panel.hidden = false;
    if (window.history.replaceState) { window.history.replaceState(null, "", "#node=" + encodeURIComponent(nodeId)); }
    logView.textContent = "";
    body.textContent = "Loading…";
    if (list) {
      list.querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-node-id") === nodeId ? "true" : "false");
      });
    }
    if (graph) { graph.mark(nodeId); }
    refresh(current);
  }

  // Capture phase: the event is heard whether or not graph.js lets it bubble. A node of the graph opens its
  // pod (a retried step: its latest attempt); one without a pod yet opens by its own id.
  document.addEventListener("kfp-node-select", function (event) {
    var detail = event.detail || {};
    var nodeId = detail.pod_id || detail.node_id;
    if (nodeId) { select(detail.run_id || panel.getAttribute("data-run-id"), nodeId); }
  }, true);
  panel.querySelector("[data-close-panel]").addEventListener("click", function () {
    if (current && current.timer) { clearTimeout(current.timer); }
    current = null;
    panel.hidden = true;
    if (window.history.replaceState) { window.history.replaceState(null, "", window.location.pathname + window.location.search); }
  });

  // The step list: every step as a button (keyboard-usable), refreshed while the run is active; when the run
  // ends the page reloads once, for its final status, metrics and actions.
  var wasActive = list && list.getAttribute("data-active") === "1";
  // Rebuilt only when the steps change (a step appears, the order changes); otherwise each button's name and
  // status change in place, so the focus stays where a keyboard user left it.
  var stepKey = null;
  var buttons = {};
  function stepButton(node) {
    var button = el("button");
    button.type = "button";
    button.setAttribute("data-node-id", node.id);
    button.appendChild(el("span"));
    button.appendChild(statusBadge(node.phase));
    button.addEventListener("click", function () {
      button.dispatchEvent(new CustomEvent("kfp-node-select", {
        bubbles: true, detail: {run_id: list.getAttribute("data-run-id"), node_id: node.id}
      }));
    });
    return button;
  }
  function showSteps(data) {
    var key = data.nodes.map(function (node) { return node.id; }).join("\n");
    if (key !== stepKey) {
      var active = document.activeElement;
      var focused = active && list.contains(active) ? active.getAttribute("data-node-id") : null;
      stepKey = key;
      buttons = {};
      list.textContent = "";
      data.nodes.forEach(function (node) {
        buttons[node.id] = list.appendChild(el("li")).appendChild(stepButton(node));
      });
      if (!data.nodes.length) { list.appendChild(el("li", "No steps yet.", "muted")); }
      if (focused && buttons[focused]) { buttons[focused].focus(); }
    }
    var selected = current ? current.node_id : null;
    data.nodes.forEach(function (node) {
      var button = buttons[node.id];
      var phase = node.phase || "Pending";
      button.firstChild.textContent = node.name + " ";
      if (button.lastChild.textContent !== phase) {
        button.lastChild.textContent = phase;
        button.lastChild.className = "status " + statusClass(node.phase);
      }
      button.setAttribute("aria-pressed", node.id === selected ? "true" : "false");
    });
  }
  function loadSteps() {
    fetch(list.getAttribute("data-nodes-url"), {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("the steps could not be loaded (" + response.status + ")"); }
        return response.json();
      })
      .then(function (data) {
        showSteps(data);
        if (data.active) { setTimeout(loadSteps, 2000); }
        else if (wasActive) { wasActive = false; window.location.reload(); }
      })
      .catch(function () {
        // The server may be restarting: a live run's steps are asked for again.
        if (wasActive) { setTimeout(loadSteps, 4000); }
      });
  }
  if (list) { loadSteps(); }
  // A shared link (or the reload when the run ends) opens the node it names: `#node=<id>`.
  var named = /^#node=(.+)$/.exec(window.location.hash);
  if (named) { select(panel.getAttribute("data-run-id"), decodeURIComponent(named[1])); }
})();
