/*
 * The run graph of the web UI: draws every `div.kfp-graph[data-graph-url]` from the graph JSON
 * (GET /ui/api/runs/<id>/graph or /ui/api/pipeline-versions/<id>/graph; the contract: docs/ui_graph.md).
 *
 * - Layout by dagre (vendored: static/vendor/dagre/dagre.min.js, loaded before this file), as a compound
 *   graph: groups (loops, iterations, conditions, sub-DAGs, the exit handler's body) are boxes around their
 *   members.
 * - Each node shows its name and its phase as text (not by colour alone), a retried step its attempt
 *   ("attempt 2/3"). Nodes are focusable (Tab) and selected by click, Enter or Space: the node then
 *   dispatches `kfp-node-select` (bubbling) with detail {run_id, version_id, node_id, pod_id}.
 * - While the run is active the JSON is fetched again every 2 s: phases change in place when the structure
 *   is the same, the graph is laid out again when nodes appeared; polling stops once the run is over.
 * - Zoom: Ctrl + wheel, the + / - / Fit buttons, or the + / - / 0 keys; pan: scroll or drag. The arrow keys
 *   move the focus from node to node.
 * - Styles: graph.css next to this file (linked by the page, else by this script): no inline styles, so the
 *   pages' Content-Security-Policy needs no 'unsafe-inline'. dagre runs without eval (script-src 'self').
 * No build step: plain ES2017 for evergreen browsers.
 */
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var POLL_MS = 2000;
  var NODE_W = 184;
  var NODE_H = 48;
  var JUNCTION_SIZE = 8;
  var MAX_LABEL = 26;
  var BIG_GRAPH = 100;
  var PHASE_TEXT = {
    '': 'Not run', Pending: 'Pending', Running: 'Running', Succeeded: 'Succeeded', Failed: 'Failed',
    Error: 'Error', Skipped: 'Skipped', Omitted: 'Omitted', Terminating: 'Terminating'
  };
  // graph.css, next to this file: a stylesheet, not an injected <style> (the pages' CSP has no 'unsafe-inline').
  var STYLESHEET = document.currentScript ? new URL('graph.css', document.currentScript.src).href : null;
  var instances = 0;

  function linkStylesheet() {
    if (!STYLESHEET || document.getElementById('kfp-graph-style')) return;
    var present = Array.prototype.some.call(document.querySelectorAll('link[rel=stylesheet]'),
      function (link) { return link.href === STYLESHEET; });
    if (present) return;
    var link = document.createElement('link');
    link.id = 'kfp-graph-style';
    link.rel = 'stylesheet';
    link.href = STYLESHEET;
    document.head.appendChild(link);
  }

  function svg(name, attributes, parent) {
    var element = document.createElementNS(SVG_NS, name);
    Object.keys(attributes || {}).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    if (parent) parent.appendChild(element);
    return element;
  }

  function phaseText(phase) {
    return Object.prototype.hasOwnProperty.call(PHASE_TEXT, phase) ? PHASE_TEXT[phase] : phase;
  }

  function phaseClass(phase) {
    return 'kfp-phase-' + (phase ? phase.toLowerCase() : 'none');
  }

  function shorten(text) {
    return text.length > MAX_LABEL ? text.slice(0, MAX_LABEL - 1) + '\u2026' : text;
  }

  // What a node's second line says: its phase, and for a retried step which attempt.
  function stateLine(node, showPhase) {
    var parts = [];
    if (showPhase) parts.push(phaseText(node.phase));
    if (node.type === 'retry' && node.attempt) {
      parts.push('attempt ' + node.attempt + (node.max_attempts ? '/' + node.max_attempts : ''));
    } else if (node.type === 'retry' && node.max_attempts) {
      parts.push('up to ' + node.max_attempts + ' attempts');
    }
    if (node.type === 'loop') parts.push('loop');
    if (node.exit_handler) parts.push('exit handler');
    return parts.join(' \u00b7 ');
  }

  function describe(node, showPhase) {
    var text = node.display_name + ': ' + stateLine(node, showPhase);
    return node.message ? text + ' \u2014 ' + node.message : text;
  }

  // The structure a drawing depends on: when it is unchanged, only phases (and texts) are updated.
  function structureKey(data) {
    return JSON.stringify([
      data.nodes.map(function (n) { return [n.id, n.type, n.group]; }),
      data.groups.map(function (g) { return [g.id, g.parent]; }),
      data.edges.map(function (e) { return [e.from, e.to]; })
    ]);
  }

  function Graph(element) {
    this.element = element;
    this.url = element.getAttribute('data-graph-url');
    this.id = ++instances;
    this.key = null;
    this.selected = null;
    this.items = {};
    this.zoom = 1;
    this.size = null;
    this.timer = null;
    this.build();
  }

  Graph.prototype.build = function () {
    var self = this;
    this.element.textContent = '';
    this.element.classList.add('kfp-graph');
    var tools = document.createElement('div');
    tools.className = 'kfp-graph-tools';
    [['+', 'Zoom in', 1.25], ['\u2212', 'Zoom out', 0.8], ['Fit', 'Fit the graph to the view', 0]].forEach(
      function (tool) {
        var button = document.createElement('button');
        button.type = 'button';
        button.textContent = tool[0];
        button.title = tool[1];
        button.setAttribute('aria-label', tool[1]);
        button.addEventListener('click', function () { self.zoomBy(tool[2]); });
        tools.appendChild(button);
      });
    this.status = document.createElement('div');
    this.status.className = 'kfp-graph-status';
    this.status.setAttribute('role', 'status');
    this.status.textContent = 'Loading the graph\u2026';
    this.scroller = document.createElement('div');
    this.scroller.className = 'kfp-graph-scroll';
    this.element.appendChild(tools);
    this.element.appendChild(this.status);
    this.element.appendChild(this.scroller);
    // Keyboard: + / - / 0 zoom (in, out, fit) anywhere in the graph; the arrow keys move between nodes.
    this.element.addEventListener('keydown', function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var zoom = {'+': 1.25, '=': 1.25, '-': 0.8, '0': 0}[event.key];
      if (zoom !== undefined) {
        event.preventDefault();
        self.zoomBy(zoom);
        return;
      }
      var node = event.target.closest && event.target.closest('.kfp-node');
      var step = {ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0]}[event.key];
      if (!node || !step) return;
      var next = self.neighbour(node.getAttribute('data-node-id'), step[0], step[1]);
      if (next) {
        event.preventDefault();
        self.items[next].element.focus();
      }
    });
    this.scroller.addEventListener('wheel', function (event) {
      if (!event.ctrlKey) return;
      event.preventDefault();
      self.zoomBy(event.deltaY < 0 ? 1.1 : 1 / 1.1);
    }, {passive: false});
    if (window.ResizeObserver) {
      var width = 0;
      // The outer div's width: not changed by the drawing's own scroll bars (no loop).
      new ResizeObserver(function () {
        if (self.element.clientWidth === width) return;
        width = self.element.clientWidth;
        self.fitUnlessZoomed();
      }).observe(this.element);
    }
    var drag = null;
    this.scroller.addEventListener('mousedown', function (event) {
      if (event.button !== 0 || event.target.closest('.kfp-node')) return;
      drag = {x: event.clientX, y: event.clientY, left: self.scroller.scrollLeft, top: self.scroller.scrollTop};
    });
    window.addEventListener('mousemove', function (event) {
      if (!drag) return;
      self.scroller.scrollLeft = drag.left - (event.clientX - drag.x);
      self.scroller.scrollTop = drag.top - (event.clientY - drag.y);
    });
    window.addEventListener('mouseup', function () { drag = null; });
  };

  // The nearest node from `fromId` in direction (dx, dy): ahead of it, the straightest and closest.
  Graph.prototype.neighbour = function (fromId, dx, dy) {
    var from = this.items[fromId];
    var best = null;
    var bestScore = Infinity;
    var self = this;
    Object.keys(this.items).forEach(function (id) {
      var item = self.items[id];
      if (id === fromId || !item.node || item.x === undefined) return;
      var ahead = (item.x - from.x) * dx + (item.y - from.y) * dy;
      if (ahead <= 0) return;
      var aside = Math.abs((item.x - from.x) * dy) + Math.abs((item.y - from.y) * dx);
      var score = ahead + 2 * aside;
      if (score < bestScore) { bestScore = score; best = id; }
    });
    return best;
  };

  Graph.prototype.zoomBy = function (factor) {
    if (!this.size || !this.svg) return;
    this.zoomed = true;
    if (factor === 0) {
      var width = this.scroller.clientWidth || this.size.width;
      this.zoom = Math.min(1, width / this.size.width);
    } else {
      this.zoom = Math.max(0.1, Math.min(3, this.zoom * factor));
    }
    this.applyZoom();
  };

  // Until the person zooms, the drawing fits the width when that keeps the text readable (at least half
  // size): at first, and again when the area changes width (the node panel opening beside it).
  Graph.prototype.fitUnlessZoomed = function () {
    if (!this.size || !this.svg) return;
    if (!this.zoomed) {
      var fit = (this.scroller.clientWidth || this.size.width) / this.size.width;
      this.zoom = Math.min(1, Math.max(0.5, fit));
    }
    this.applyZoom();
  };

  Graph.prototype.applyZoom = function () {
    this.svg.setAttribute('width', Math.ceil(this.size.width * this.zoom));
    this.svg.setAttribute('height', Math.ceil(this.size.height * this.zoom));
  };

  Graph.prototype.refresh = function () {
    var self = this;
    this.timer = null;
    return fetch(this.url, {credentials: 'same-origin', headers: {Accept: 'application/json'}, cache: 'no-store'})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) {
            var message = (body && (body.message || body.error)) || response.statusText;
            throw new Error('The graph could not be loaded (' + response.status + '): ' + message);
          }
          return body;
        });
      })
      .then(function (data) {
        self.render(data);
        if (data.active && self.element.isConnected) {
          self.timer = setTimeout(function () { self.refresh(); }, POLL_MS);
        }
      })
      .catch(function (error) {
        self.status.textContent = error.message;
        self.status.setAttribute('role', 'alert');
        // A live run's graph is asked for again: the server may have been restarting.
        if (self.data && self.data.active && self.element.isConnected) {
          self.timer = setTimeout(function () { self.refresh(); }, POLL_MS * 2);
        }
      });
  };

  Graph.prototype.stop = function () {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  };

  Graph.prototype.render = function (data) {
    if (typeof dagre === 'undefined') throw new Error('The graph layout library (dagre) is not loaded.');
    this.data = data;
    this.isRun = !!data.run_id;
    var key = structureKey(data);
    if (key === this.key) {
      this.update(data);
    } else {
      this.key = key;
      this.draw(data);
    }
    if (this.wanted && this.resolve(this.wanted) !== this.selected) this.mark(this.wanted);
    this.status.setAttribute('role', 'status');
    this.status.textContent = this.summary(data);
    this.element.setAttribute('data-graph-state', data.active ? 'live' : 'final');
    this.element.setAttribute('data-graph-updated', String(performance.now()));
    this.element.dispatchEvent(new CustomEvent('kfp-graph-drawn', {detail: {graph: data}, bubbles: true}));
  };

  Graph.prototype.summary = function (data) {
    var steps = data.nodes.filter(function (n) { return n.type !== 'junction'; }).length;
    var text = steps + (steps === 1 ? ' step' : ' steps');
    if (this.isRun) {
      var status = data.status ? phaseText(data.status).toLowerCase() : 'not started';
      text = 'Run ' + status + (data.active ? ' (updating)' : '') + ' \u2014 ' + text;
    }
    if (data.spec_error) text += ' \u2014 the pipeline spec could not be read: ' + data.spec_error;
    return text;
  };

  Graph.prototype.layout = function (data) {
    var graph = new dagre.graphlib.Graph({compound: true});
    // dagre's default ranker (network simplex) gives the shortest edges but is its slowest step on big graphs:
    // above BIG_GRAPH nodes the tight-tree ranker (about half the time at 200 nodes) keeps a drawing < 1 s.
    graph.setGraph({rankdir: 'TB', nodesep: 24, ranksep: 40, marginx: 16, marginy: 16,
      ranker: data.nodes.length > BIG_GRAPH ? 'tight-tree' : 'network-simplex'});
    graph.setDefaultEdgeLabel(function () { return {}; });
    data.groups.forEach(function (group) { graph.setNode(group.id, {}); });
    data.groups.forEach(function (group) { if (group.parent) graph.setParent(group.id, group.parent); });
    data.nodes.forEach(function (node) {
      var junction = node.type === 'junction';
      graph.setNode(node.id, {width: junction ? JUNCTION_SIZE : NODE_W, height: junction ? JUNCTION_SIZE : NODE_H});
      if (node.group) graph.setParent(node.id, node.group);
    });
    data.edges.forEach(function (edge) { graph.setEdge(edge.from, edge.to); });
    dagre.layout(graph);
    return graph;
  };

  Graph.prototype.draw = function (data) {
    var self = this;
    var layout = this.layout(data);
    var size = layout.graph();
    this.size = {width: Math.max(size.width || 0, 100), height: Math.max(size.height || 0, 60)};
    var root = svg('svg', {
      viewBox: '0 0 ' + this.size.width + ' ' + this.size.height, role: 'group',
      'aria-label': this.isRun ? 'Run graph' : 'Pipeline graph'
    });
    var arrow = 'kfp-arrow-' + this.id;
    var marker = svg('marker', {id: arrow, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse'}, svg('defs', {}, root));
    svg('path', {d: 'M0,0 L10,5 L0,10 z', 'class': 'kfp-arrow'}, marker);
    var groupLayer = svg('g', {'class': 'kfp-groups'}, root);
    var edgeLayer = svg('g', {'class': 'kfp-edges', 'aria-hidden': 'true'}, root);
    var nodeLayer = svg('g', {'class': 'kfp-nodes'}, root);
    this.items = {};

    // Outer groups first, so inner boxes are drawn over them.
    var depth = {};
    var parents = {};
    data.groups.forEach(function (group) { parents[group.id] = group.parent; });
    function depthOf(id) {
      if (!(id in depth)) depth[id] = parents[id] ? depthOf(parents[id]) + 1 : 0;
      return depth[id];
    }
    data.groups.slice().sort(function (a, b) { return depthOf(a.id) - depthOf(b.id); }).forEach(function (group) {
      var box = layout.node(group.id);
      if (!box || !box.width) return;
      var element = svg('g', {'class': 'kfp-group kfp-group-' + group.kind, 'data-group-id': group.id}, groupLayer);
      svg('rect', {x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height,
        rx: 6}, element);
      var label = svg('text', {x: box.x - box.width / 2 + 8, y: box.y - box.height / 2 + 14}, element);
      var title = svg('title', {}, element);
      self.items[group.id] = {element: element, label: label, title: title, group: group};
      self.updateGroup(group);
    });

    data.edges.forEach(function (edge) {
      var route = layout.edge(edge.from, edge.to);
      if (!route || !route.points) return;
      var path = route.points.map(function (p, i) { return (i ? 'L' : 'M') + p.x.toFixed(1) + ',' + p.y.toFixed(1); });
      svg('path', {d: path.join(' '), 'class': 'kfp-edge', 'marker-end': 'url(#' + arrow + ')'}, edgeLayer);
    });

    data.nodes.forEach(function (node) {
      var box = layout.node(node.id);
      if (node.type === 'junction') {
        svg('circle', {cx: box.x, cy: box.y, r: JUNCTION_SIZE / 2, 'class': 'kfp-junction'}, nodeLayer);
        return;
      }
      var element = svg('g', {'class': 'kfp-node', tabindex: 0, role: 'button', 'data-node-id': node.id,
        transform: 'translate(' + (box.x - NODE_W / 2) + ',' + (box.y - NODE_H / 2) + ')'}, nodeLayer);
      svg('rect', {'class': 'kfp-box', width: NODE_W, height: NODE_H, rx: 4}, element);
      svg('rect', {'class': 'kfp-stripe', width: 6, height: NODE_H, rx: 2}, element);
      var name = svg('text', {'class': 'kfp-node-name', x: 14, y: 19}, element);
      var state = svg('text', {'class': 'kfp-node-phase', x: 14, y: 36}, element);
      var title = svg('title', {}, element);
      element.addEventListener('click', function () { self.select(node.id); });
      element.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          self.select(node.id);
        }
      });
      self.items[node.id] = {element: element, name: name, state: state, title: title, node: node, x: box.x, y: box.y};
      self.updateNode(node);
    });

    this.scroller.textContent = '';
    this.scroller.appendChild(root);
    this.svg = root;
    this.fitUnlessZoomed();
    if (this.selected && this.items[this.selected]) this.items[this.selected].element.classList.add('kfp-selected');
  };

  Graph.prototype.update = function (data) {
    var self = this;
    data.groups.forEach(function (group) { if (self.items[group.id]) self.updateGroup(group); });
    data.nodes.forEach(function (node) { if (self.items[node.id] && node.type !== 'junction') self.updateNode(node); });
  };

  Graph.prototype.updateNode = function (node) {
    var item = this.items[node.id];
    item.node = node;
    var classes = ['kfp-node', 'kfp-type-' + node.type, phaseClass(node.phase)];
    if (node.planned) classes.push('kfp-planned');
    if (node.id === this.selected) classes.push('kfp-selected');
    item.element.setAttribute('class', classes.join(' '));
    item.element.setAttribute('data-phase', node.phase || '');
    item.name.textContent = shorten(node.display_name);
    item.state.textContent = stateLine(node, this.isRun);
    item.title.textContent = describe(node, this.isRun);
    item.element.setAttribute('aria-label', describe(node, this.isRun));
  };

  Graph.prototype.updateGroup = function (group) {
    var item = this.items[group.id];
    item.group = group;
    var text = group.display_name + (this.isRun ? ' \u00b7 ' + phaseText(group.phase) : '');
    item.label.textContent = text;
    item.title.textContent = text + (group.condition ? ' \u2014 when ' + group.condition : '') +
      (group.message ? ' \u2014 ' + group.message : '');
    item.element.setAttribute('data-phase', group.phase || '');
  };

  // The drawn node that shows `id`: a node's own id, its pod's, or one of a retried step's attempts.
  Graph.prototype.resolve = function (id) {
    if (!this.data || !id) return null;
    var found = this.data.nodes.filter(function (node) {
      return node.id === id || node.pod_id === id ||
        (node.attempts || []).some(function (attempt) { return attempt.id === id; });
    })[0];
    return found && this.items[found.id] ? found.id : null;
  };

  // Mark a node selected without announcing it: the page chose it elsewhere (its step list, a #node= link).
  // Kept until drawn when the graph is not there yet.
  Graph.prototype.mark = function (id) {
    this.wanted = id;
    var nodeId = this.resolve(id);
    if (!nodeId) return null;
    if (this.selected && this.items[this.selected]) this.items[this.selected].element.classList.remove('kfp-selected');
    this.selected = nodeId;
    this.items[nodeId].element.classList.add('kfp-selected');
    return nodeId;
  };

  Graph.prototype.select = function (nodeId) {
    var item = this.items[nodeId];
    if (!item) return;
    this.mark(nodeId);
    item.element.dispatchEvent(new CustomEvent('kfp-node-select', {
      bubbles: true,
      detail: {
        run_id: this.data.run_id || null, version_id: this.data.pipeline_version_id || null,
        node_id: nodeId, pod_id: item.node.pod_id || null
      }
    }));
  };

  function init(root) {
    linkStylesheet();
    var found = (root || document).querySelectorAll('div.kfp-graph[data-graph-url]');
    Array.prototype.forEach.call(found, function (element) {
      if (element.kfpGraph) return;
      element.kfpGraph = new Graph(element);
      element.kfpGraph.refresh();
    });
  }

  window.kfpGraph = {init: init, Graph: Graph};
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { init(document); });
  } else {
    init(document);
  }
})();
