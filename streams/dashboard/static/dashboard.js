"use strict";
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat("en-US");
const NA = "\u2014";

function integer(value) { return value === null || value === undefined ? NA : number.format(value); }
function rate(value) {
  if (value === null || value === undefined) return NA;
  return value < 10 ? value.toFixed(1) : number.format(Math.round(value));
}
function seconds(value) {
  if (value === null || value === undefined) return NA;
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 60) return value.toFixed(2) + " s";
  return Math.round(value) + " s";
}
function age(value) {
  if (value === null || value === undefined) return NA;
  if (value < 60) return value.toFixed(1) + " s ago";
  if (value < 3600) return Math.round(value / 60) + " min ago";
  return Math.round(value / 3600) + " h ago";
}
function setText(id, text) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle("na", text === NA);
}
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (text === NA) td.className = "na";
  if (className) td.className = className;
  return td;
}
function tag(ok, text) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "tag " + (ok ? "ok" : "bad");
  span.textContent = text;
  td.appendChild(span);
  return td;
}
function replaceRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
    return;
  }
  for (const cells of rows) {
    const tr = document.createElement("tr");
    cells.forEach((td) => tr.appendChild(td));
    tbody.appendChild(tr);
  }
}

function renderSources(sources) {
  const names = {kafka: "Kafka", postgres: "PostgreSQL", stats: "Stats", witnesses: "Witnesses"};
  const rows = [];
  for (const [key, state] of Object.entries(sources)) {
    const pill = $("source-" + key);
    if (pill) {
      pill.classList.toggle("up", state.up);
      pill.classList.toggle("down", !state.up);
      pill.title = state.up ? "up" : "unavailable: " + (state.error || "");
    }
    const stateCell = tag(state.up, state.up ? "up" : "down");
    stateCell.className = "text";
    rows.push([cell(names[key] || key), stateCell,
               cell(state.up ? "" : (state.error || ""), "text detail")]);
  }
  replaceRows($("sources"), rows, "", 3);
}

function renderChain(chain, ledgers) {
  const card = $("chain-card");
  const known = ledgers.length > 0;
  card.classList.toggle("ok", chain.ok && known);
  card.classList.toggle("bad", !chain.ok);
  if (!chain.ok) {
    const first = chain.broken[0];
    $("chain-state").textContent = "BROKEN";
    $("chain-detail").textContent = first.ledger + " at height " + first.height + ": " + first.reason;
    return;
  }
  $("chain-state").textContent = "OK";
  $("chain-detail").textContent = ledgers.map((l) => l.chain_verified_height < 0
    ? l.ledger + ": no block yet"
    : l.ledger + ": every block verified up to height " + integer(l.chain_verified_height)
  ).join(" \u00b7 ");
}

function renderLedgers(ledgers) {
  replaceRows($("ledgers"), ledgers.map((l) => [
    cell(l.ledger), cell(integer(l.chain_height)), cell(integer(l.projected_height)),
    cell(integer(l.chain_verified_height)), cell(integer(l.sealed_transactions)),
    cell(age(l.last_block_age_s)), cell(rate(l.throughput_10s)),
    cell(seconds(l.confirmation_p99_s)), cell(integer(l.sequence_lag_messages)),
    cell(integer(l.project_lag_blocks)),
    tag(l.chain_ok, l.chain_ok ? "ok" : "broken"),
  ]), "no ledgers configured", 11);
}

function renderRejections(rejections) {
  if (rejections === null) {
    replaceRows($("rejections"), [], "unavailable (PostgreSQL is down)", 3);
    return;
  }
  replaceRows($("rejections"), rejections.map((r) => [
    cell(r.code), cell(r.stage, "text"), cell(integer(r.count)),
  ]), "no rejections", 3);
}

// The stats worker's figures, by event time from the block stream and ledger.rejections.
function volumes(amounts) {
  const parts = Object.entries(amounts).map(([asset, amount]) => asset + " " + number.format(amount));
  return parts.length ? parts.join(", ") : NA;
}
function renderStream(stream) {
  if (stream.rejections_60s === null) {
    replaceRows($("stream-ledgers"), [], "unavailable (see Sources: Stats)", 5);
    replaceRows($("stream-rejections"), [], "unavailable (see Sources: Stats)", 3);
    return;
  }
  replaceRows($("stream-ledgers"), stream.ledgers.map((s) => [
    cell(s.ledger), cell(rate(s.tx_per_s_10s)), cell(rate(s.tx_per_s_60s)),
    cell(volumes(s.volume_60s), "text"), cell(integer(s.height)),
  ]), "no ledgers configured", 5);
  replaceRows($("stream-rejections"), stream.rejections_60s.map((q) => [
    cell(q.code), cell(q.ledger, "text"), cell(integer(q.count)),
  ]), "no rejections in the last minute", 3);
}

// Witnesses & finality: one block per ledger, built with textContent only.
const WITNESS_TAGS = {"co-signing": "ok", "behind": "warn", "halted": "bad", "silent": "idle"};
function element(tagName, className, text) {
  const node = document.createElement(tagName);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
function figure(label, value, className) {
  const box = element("div");
  box.appendChild(element("div", "label", label));
  const big = element("div", "big" + (className ? " " + className : ""), value);
  if (value === NA) big.classList.add("na");
  box.appendChild(big);
  return box;
}
function witnessStateCell(state) {
  const td = document.createElement("td");
  td.className = "text";
  td.appendChild(element("span", "tag " + (WITNESS_TAGS[state] || "bad"), state));
  return td;
}
function height(value) { return value === null || value === undefined || value < 0 ? NA : integer(value); }
function finalityLedger(f) {
  const box = element("div", "finality-ledger");
  box.dataset.ledger = f.ledger;
  box.appendChild(element("div", "name", "ledger " + f.ledger));
  if (f.evidence_count > 0) {
    box.appendChild(element("div", "evidence-note",
      "Evidence against the sealer: " + integer(f.evidence_count) +
      " record(s). Investigate before trusting new blocks (docs/witnesses.md)."));
  }
  const pair = element("div", "pair");
  pair.appendChild(figure("final height", height(f.final_height)));
  pair.appendChild(figure("final lag (blocks)", integer(f.final_lag_blocks)));
  pair.appendChild(figure("threshold", f.threshold === 0
    ? "0 (final when sealed)" : f.threshold + " of " + f.witness_count));
  pair.appendChild(figure("evidence", integer(f.evidence_count),
    "evidence" + (f.evidence_count > 0 ? " bad" : "")));
  box.appendChild(pair);
  const table = element("table");
  const head = element("tr");
  for (const [text, className] of [["witness"], ["key id", "text"], ["co-signed height"],
      ["lag (blocks)"], ["last cosignature"], ["state", "text"], ["evidence", "text"]]) {
    head.appendChild(element("th", className, text));
  }
  table.appendChild(element("thead")).appendChild(head);
  const tbody = element("tbody");
  table.appendChild(tbody);
  replaceRows(tbody, f.witnesses.map((w) => [
    cell(w.name || NA), cell(w.key_id, "text"), cell(height(w.height)),
    cell(integer(w.lag_blocks)), cell(age(w.last_cosignature_age_s)), witnessStateCell(w.state),
    cell(w.evidence_count > 0
      ? w.evidence_kind + " at height " + w.evidence_height + ": " + w.evidence_detail : "",
      w.evidence_count > 0 ? "text detail" : "text"),
  ]), "no witness registered on this ledger", 7);
  box.appendChild(table);
  return box;
}
function renderFinality(finality) {
  setText("ignored-messages", integer(finality.ignored_messages));
  setText("recorder-lag", integer(finality.recorder_lag_messages));
  $("finality-card").classList.toggle("bad", (finality.evidence_total || 0) > 0);
  const list = $("finality-ledgers");
  if (finality.ledgers === null) {
    list.replaceChildren();
    $("finality-empty").textContent = "unavailable (see Sources: Witnesses)";
    return;
  }
  $("finality-empty").textContent = finality.ledgers.length ? "" : "no ledgers configured";
  list.replaceChildren(...finality.ledgers.map(finalityLedger));
}

// The last hour, as the server keeps it (/api/history): a sample every few seconds.
const HISTORY_POLL_MS = 5000;
const HOUR_MS = 60 * 60 * 1000;
function renderHistory(doc) {
  const t = doc.t, series = doc.series;
  const span = Math.min(HOUR_MS, doc.span_s * 1000);
  drawChart($("chart-throughput"), t, [{values: series.tx_per_s, className: "s1"}],
            {format: rate, span});
  drawChart($("chart-latency"), t, [
    {values: series.confirmation_p50_s, className: "s1"}, {values: series.confirmation_p99_s, className: "s2"},
    {values: series.visibility_p50_s, className: "s3"}, {values: series.visibility_p99_s, className: "s4"},
  ], {format: seconds, span});
  drawChart($("chart-lag"), t, [
    {values: series.verify_lag_messages, className: "s1"}, {values: series.sequence_lag_messages, className: "s2"},
    {values: series.project_lag_blocks, className: "s3"},
  ], {format: integer, span, integer: true});
  drawChart($("chart-rejections"), t, [{values: series.rejections_per_s, className: "s4"}],
            {format: rate, span});
  $("history-caption").textContent = t.length
    ? `kept by the dashboard process: a sample every ${doc.interval_s} s, ${t.length} so far`
    : "kept by the dashboard process: no sample yet";
}
async function pollHistory() {
  try {
    const response = await fetch("/api/history", {cache: "no-store"});
    if (response.ok) renderHistory(await response.json());
  } catch (error) {
    // The status poll shows the banner; the charts keep their last drawing.
  } finally {
    setTimeout(pollHistory, HISTORY_POLL_MS);
  }
}

function render(status) {
  // Throughput from the block stream (stats) when it is up: it does not wait for the projector.
  const fromStream = status.stream.tx_per_s_10s !== null;
  const source = fromStream ? status.stream : status.throughput;
  setText("tps10", rate(source.tx_per_s_10s));
  setText("tps60", rate(source.tx_per_s_60s));
  $("tps-source").textContent = fromStream
    ? "sealed, by seal time, from the block stream"
    : "from PostgreSQL (stats unavailable)";
  setText("conf-p50", seconds(status.latency.confirmation_s.p50));
  setText("conf-p99", seconds(status.latency.confirmation_s.p99));
  setText("vis-p50", seconds(status.latency.visibility_s.p50));
  setText("vis-p99", seconds(status.latency.visibility_s.p99));
  setText("lag-verify", integer(status.lag.verify_messages));
  setText("lag-sequence", integer(status.lag.sequence_messages));
  setText("lag-project", integer(status.lag.project_blocks));
  renderSources(status.sources);
  renderChain(status.chain, status.ledgers);
  renderLedgers(status.ledgers);
  renderRejections(status.rejections);
  renderStream(status.stream);
  renderFinality(status.finality);
  $("updated").textContent = "updated " + new Date(status.taken_at_ms).toLocaleTimeString();
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.style.display = text ? "block" : "none";
}

async function poll() {
  try {
    const response = await fetch("/api/status", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    showBanner("");
  } catch (error) {
    showBanner("The dashboard server does not answer (" + error.message + "); figures below are stale.");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}
poll();
pollHistory();
