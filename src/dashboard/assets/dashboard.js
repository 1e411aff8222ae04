// The dashboard: reads /status every second and /status/throughput every other second, and
// posts the controls. Every text from the node is set with textContent: what peers send
// (refusal reasons, signer names) is never parsed as markup.
"use strict";

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;
const SOURCES = ["local", "peer", "swarm", "nar_cache", "old_peer", "pull_through"];
const SOURCE_NAMES = { local: "own store", peer: "peers", swarm: "swarm", nar_cache: "NAR cache", old_peer: "old LAN peers", pull_through: "pull-through" };

const $ = (id) => document.getElementById(id);

let build = null;
let previous = null;
let polls = 0;

function bytes(n) {
  if (n == null || Number.isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}
const rate = (n) => (n == null ? "–" : bytes(n) + "/s");
const count = (n) => (n == null ? "–" : Number(n).toLocaleString("en"));
const paths = (n) => count(n) + (n === 1 ? " path" : " paths");

function duration(seconds) {
  if (seconds == null) return "–";
  seconds = Math.round(seconds);
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function setState(id, text, kind) {
  setText(id, text);
  $(id).className = "state " + kind;
}

function element(tag, text, className) {
  const el = document.createElement(tag);
  if (text != null) el.textContent = text;
  if (className) el.className = className;
  return el;
}

// Per second, from the previous document, of the number `pick` reads.
function perSecond(status, pick) {
  if (!previous) return null;
  const seconds = (status.at - previous.at) / 1000;
  const before = pick(previous), now = pick(status);
  if (seconds <= 0 || before == null || now == null) return null;
  return Math.max(0, now - before) / seconds;
}

function shortId(id) {
  return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id;
}

function renderSavings(status) {
  const served = status.served || {};
  setText("not-upstream", bytes(served.bytes_not_from_upstream));
  const byBytes = served.nar_bytes || {};
  const total = SOURCES.reduce((sum, s) => sum + (byBytes[s] || 0), 0);
  const bar = $("source-bar"), legend = $("source-legend");
  bar.replaceChildren(...SOURCES.filter((s) => byBytes[s] > 0).map((s) => {
    const part = element("div", null, "src-" + s);
    part.style.width = (100 * byBytes[s] / total) + "%";
    part.title = SOURCE_NAMES[s];
    return part;
  }));
  legend.replaceChildren(...SOURCES.map((s) => {
    const item = element("li");
    item.append(element("i", null, "swatch src-" + s), SOURCE_NAMES[s] + " ",
      element("b", bytes(byBytes[s] || 0)),
      element("span", " · " + count((served.narinfos || {})[s] || 0) + " narinfos", "quiet"));
    return item;
  }));
  const requests = status.nix_requests;
  if (requests) {
    setText("hits", count(requests.narinfo_hits));
    setText("misses", count(requests.narinfo_misses));
    const asked = requests.narinfo_hits + requests.narinfo_misses;
    setText("hit-rate", asked ? (100 * requests.narinfo_hits / asked).toFixed(1) + " %" : "–");
    const perSec = perSecond(status, (s) => s.nix_requests && s.nix_requests.narinfo_hits + s.nix_requests.narinfo_misses);
    setText("request-rate", perSec == null ? "–" : perSec.toFixed(1) + " narinfos/s");
  }
  const lookups = status.lookups || {};
  const places = { local: "own store", peer: "peers' indexes", tracker: "tracker", old_peer: "old LAN peers", upstream: "upstream (pull-through)" };
  const rows = Object.keys(places).filter((k) => lookups[k]).map((k) =>
    [places[k], count(lookups[k].hit) + " found, " + count(lookups[k].miss) + " not"]);
  const list = $("lookup-list");
  const shown = JSON.stringify(rows);
  if (list.dataset.shown !== shown) {
    list.dataset.shown = shown;
    list.replaceChildren(...rows.flatMap(([k, v]) => [element("dt", k), element("dd", v)]));
  }
}

function renderScan(status) {
  const scan = status.scan;
  const state = scan.paused ? ["paused", "paused"] : scan.running ? ["running", "running"]
    : scan.finished_seconds_ago != null ? ["finished " + duration(scan.finished_seconds_ago) + " ago", "done"]
    : ["waiting", "waiting"];
  setState("scan-state", state[0], state[1]);
  const share = scan.paths_total ? Math.min(1, scan.paths_done / scan.paths_total) : (scan.running ? 0 : 1);
  $("scan-fill").style.width = (100 * share).toFixed(1) + "%";
  $("scan-progress").setAttribute("aria-valuenow", (100 * share).toFixed(0));
  setText("scan-done", count(scan.paths_done));
  setText("scan-total", count(scan.paths_total));
  setText("scan-failed", count(scan.paths_failed));
  setText("scan-bytes", bytes(scan.bytes));
  setText("scan-rate", scan.running ? rate(scan.bytes_per_second) : "–");
  setText("scan-eta", scan.eta_seconds != null ? duration(scan.eta_seconds) : "–");
  setText("indexed", status.indexed_paths == null ? "–" : paths(status.indexed_paths));
  toggle("scan-toggle", scan.paused, "Pause scan", "Resume scan");
}

function renderAnnouncements(status, node) {
  const a = node.announcements;
  setState("announce-state", a.paused ? "paused" : a.running || a.queued ? "running" : "idle",
    a.paused ? "paused" : a.running || a.queued ? "running" : "done");
  setText("announce-queued", count(a.queued));
  setText("announce-running", count(a.running));
  setText("announce-done", count(a.done));
  setText("provided-keys", count(node.provided_keys));
  const perSec = perSecond(status, (s) => s.node && s.node.announcements && s.node.announcements.done);
  setText("announce-rate", perSec == null ? "–" : perSec.toFixed(1) + "/s");
  toggle("announce-toggle", a.paused, "Pause announcements", "Resume announcements");
}

function renderTraffic(status, node) {
  setState("p2p-state", node.traffic_stopped ? "stopped" : "running", node.traffic_stopped ? "stopped" : "running");
  setText("peer-count", count(node.peers.length));
  setText("p2p-in", bytes(node.bytes_in));
  setText("p2p-out", bytes(node.bytes_out));
  setText("bandwidth-cap", node.bandwidth_limit ? rate(node.bandwidth_limit) : "none");
  toggle("p2p-toggle", node.traffic_stopped, "Stop peer-to-peer traffic", "Start peer-to-peer traffic");
  $("p2p-toggle").classList.toggle("restore", node.traffic_stopped);
}

function renderNetwork(node) {
  setText("nat", node.nat.reachability);
  setText("nat-mapping", node.nat.mapping);
  setText("hole-punching", node.nat.hole_punching);
  const addrs = [
    ...node.listen_addrs.map((a) => ["listening", a]),
    ...node.external_addrs.map((a) => ["external", a]),
    ...node.relayed_addrs.map((a) => ["relayed", a]),
  ];
  const list = $("addrs");
  if (list.dataset.shown !== JSON.stringify(addrs)) {
    list.dataset.shown = JSON.stringify(addrs);
    list.replaceChildren(...addrs.map(([kind, addr]) => element("li", kind + " " + addr)));
  }
}

function renderDiscovery(status) {
  const d = status.discovery || {};
  const rows = [
    ["mode", status.mode],
    ["mDNS", d.mdns ? "on" : "off"],
    ["public DHT", d.public_dht ? "on" : "off"],
    ["bootstrap peers", count(d.bootstrap_peers)],
  ];
  if (status.tracker) {
    rows.push(["tracker", (status.tracker.reachable ? "reachable" : "unreachable") + " · " + status.tracker.url]);
    if (status.tracker.last_error && !status.tracker.reachable) rows.push(["tracker error", status.tracker.last_error]);
  } else {
    rows.push(["tracker", "none"]);
  }
  if (status.lan) {
    rows.push(["LAN protocol", "UDP " + status.lan.udp_port + (status.lan.broadcast ? ", broadcast" : ", no broadcast")]);
    rows.push(["old LAN peers", count(status.lan.old_peers_heard.length)]);
  }
  const peers = (status.node && status.node.peers) || [];
  rows.push(["peers nearby", count(peers.filter((p) => p.local_network).length) + " of " + count(peers.length) + " (LAN, VPN)"]);
  rows.push(["peers holding paths", count(status.peers.holders) + " (" + paths(status.peers.paths) + ")"]);
  const list = $("discovery-list");
  const shown = JSON.stringify(rows);
  if (list.dataset.shown === shown) return;
  list.dataset.shown = shown;
  list.replaceChildren(...rows.flatMap(([k, v]) => [element("dt", k), element("dd", v)]));
}

function renderPeers(status, node) {
  const before = new Map(((previous && previous.node && previous.node.peers) || []).map((p) => [p.peer_id, p]));
  const seconds = previous ? (status.at - previous.at) / 1000 : 0;
  const held = status.peers.held_by_peer || {};
  const now = (p, key) => {
    const old = before.get(p.peer_id);
    return old && seconds > 0 ? rate(Math.max(0, p[key] - old[key]) / seconds) : "–";
  };
  const rows = node.peers.map((p) => {
    const row = element("tr");
    const cells = [
      ["peer", shortId(p.peer_id), "mono"],
      ["link", (p.relayed ? "relayed" : "direct") + (p.local_network ? ", nearby" : "")],
      ["round trip", p.rtt_ms == null ? "–" : p.rtt_ms.toFixed(1) + " ms"],
      ["in now", now(p, "bytes_in")],
      ["out now", now(p, "bytes_out")],
      ["in total", bytes(p.bytes_in)],
      ["out total", bytes(p.bytes_out)],
      ["holds", held[p.peer_id] == null ? "–" : paths(held[p.peer_id])],
    ];
    for (const [label, text, cls] of cells) {
      const cell = element("td", text, cls);
      cell.dataset.label = label;
      row.append(cell);
    }
    row.firstChild.title = p.peer_id + (p.addr ? " at " + p.addr : "");
    return row;
  });
  $("peer-rows").replaceChildren(...rows);
  $("no-peers").hidden = rows.length > 0;
}

function renderTransfers(status) {
  const transfers = status.transfers || [];
  $("transfer-list").replaceChildren(...transfers.map((t) => {
    const item = element("li");
    const done = t.bytes_wanted ? Math.min(100, 100 * t.bytes_sent / t.bytes_wanted) : 100;
    item.append(element("span", SOURCE_NAMES[t.source] || t.source, "kind"),
      element("span", t.nar_hash.slice(0, 12) + "… ", "mono"),
      bytes(t.bytes_sent) + " of " + bytes(t.bytes_wanted) + " (" + done.toFixed(0) + " %), " + rate(t.bytes_per_second),
      element("span", t.running ? " · under way" : " · " + duration(t.seconds_ago) + " ago", "quiet"));
    return item;
  }));
  $("no-transfers").hidden = transfers.length > 0;
}

function renderRefusals(status) {
  const refusals = (status.refusals && status.refusals.newest) || [];
  setText("refusal-count", status.refusals && status.refusals.recent ? count(status.refusals.recent) + " kept" : "");
  $("refusal-list").replaceChildren(...refusals.map((r) => {
    const item = element("li");
    item.append(element("span", r.kind.replace(/_/g, " "), "kind"),
      element("span", r.hash + " ", "mono"),
      "from " + r.from + ": " + r.reason,
      element("span", " · " + duration(r.seconds_ago) + " ago", "quiet"));
    return item;
  }));
  $("no-refusals").hidden = refusals.length > 0;
}

function toggle(id, on, offLabel, onLabel) {
  const button = $(id);
  button.dataset.state = on ? "on" : "off";
  if (!button.disabled) setText(id, on ? onLabel : offLabel);
}

function render(status) {
  setText("mode", status.mode);
  setText("version", "v" + status.version);
  renderSavings(status);
  renderScan(status);
  renderDiscovery(status);
  const node = status.node;
  if (node && !node.error) {
    renderAnnouncements(status, node);
    renderTraffic(status, node);
    renderNetwork(node);
    renderPeers(status, node);
  }
  renderTransfers(status);
  renderRefusals(status);
}

function renderGraph(throughput) {
  const samples = throughput.samples;
  const svg = $("graph");
  const width = 600, height = 150, span = 600; // seconds shown
  const series = ["to_nix", "p2p_in", "p2p_out"];
  const peak = Math.max(1, ...samples.flatMap((s) => series.map((k) => s[k])));
  setText("graph-peak", rate(peak));
  const last = samples[samples.length - 1];
  if (last) {
    setText("rate-to-nix", rate(last.to_nix));
    setText("rate-p2p-in", rate(last.p2p_in));
    setText("rate-p2p-out", rate(last.p2p_out));
  }
  svg.replaceChildren(...series.map((key) => {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("class", key.replace("_", "-"));
    line.setAttribute("points", samples.map((s) => {
      const x = width * (1 - Math.min(span, s.seconds_ago) / span);
      const y = height - 2 - (height - 4) * s[key] / peak;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    return line;
  }));
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

function live(ok, text) {
  const el = $("live");
  el.className = "live " + (ok ? "ok" : "down");
  setText("live", text);
}

async function poll() {
  try {
    const status = await getJson("/status");
    status.at = Date.now();
    if (build && status.build !== build) {
      // Another build answers: load its page, scripts and all.
      location.reload();
      return;
    }
    build = status.build;
    render(status);
    previous = status;
    if (polls++ % 2 === 0) renderGraph(await getJson("/status/throughput"));
    live(true, "live");
  } catch (e) {
    live(false, "Peerix does not answer; retrying");
  }
  setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
}

async function press(button, path) {
  button.disabled = true;
  const notice = $("notice");
  try {
    const response = await fetch(path, { method: "POST" });
    if (!response.ok) throw new Error(path + " answered " + response.status + ": " + (await response.text()));
    notice.hidden = true;
  } catch (e) {
    notice.textContent = String(e.message || e);
    notice.hidden = false;
  } finally {
    button.disabled = false;
  }
  try {
    const status = await getJson("/status");
    status.at = Date.now();
    render(status);
    previous = status;
  } catch (e) {
    live(false, "Peerix does not answer; retrying");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-on]")) {
    button.addEventListener("click", () =>
      press(button, button.dataset.state === "on" ? button.dataset.off : button.dataset.on));
  }
  for (const button of document.querySelectorAll("button[data-post]")) {
    button.addEventListener("click", () => press(button, button.dataset.post));
  }
  poll();
});
