"use strict";
// The block explorer: one page, hash routes, JSON from /api/explorer/. Values from the server
// are inserted with textContent only, never as HTML. Routes:
//   #/                                latest blocks of every ledger
//   #/blocks/<ledger>?before=H        older blocks of one ledger
//   #/block/<ledger>/<height>?from=I  a block, its transactions from index I
//   #/tx/<tx_id>                      a transaction, its status and its proof
//   #/account/<ledger>/<name>?before=C|after=C   an account and a page of its statement
// (block and account pages also take limit=N, rows a page, and keep it while paging)
//   #/search/<query>                  what the query names; opens it when it names one thing

const API = "/api/explorer";
const NA = "\u2014";
const number = new Intl.NumberFormat("en-US");
const view = document.getElementById("view");
let renderCount = 0;  // a newer navigation makes the answers of older ones stale

// ---- small helpers ------------------------------------------------------------------------

function el(tag, options, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(options || {})) {
    if (value === null || value === undefined) continue;
    if (key === "text") element.textContent = value;
    else if (key === "className") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function route(...segments) { return "/" + segments.map((s) => encodeURIComponent(s)).join("/"); }
function link(path, text, options) { return el("a", {href: "#" + path, text: text, ...options}); }
function integer(value) { return value === null || value === undefined ? NA : number.format(value); }
// Heights, seqs and offsets are names of things: shown whole, as the CLI and SQL print them.
function plain(value) { return value === null || value === undefined ? NA : String(value); }
function when(iso) { return iso ? iso.replace("T", " ").replace("Z", " UTC") : NA; }
function shortHex(hex) { return hex ? hex.slice(0, 16) + "\u2026" : NA; }

function money(text) {
  // Amounts arrive as strings of minor units (int64 does not fit a JavaScript number).
  if (text === null || text === undefined) return NA;
  const negative = text.startsWith("-");
  const digits = negative ? text.slice(1) : text;
  return (negative ? "-" : "") + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function amountCell(text) {
  return el("td", {className: "amount" + (String(text).startsWith("-") ? " negative" : ""),
                   text: money(text)});
}

function cell(value, className) {
  const text = value === null || value === undefined || value === "" ? NA : String(value);
  return el("td", {className: text === NA ? "na" : className, text: text});
}

function tag(kind, text, id) { return el("span", {className: "tag " + kind, text: text, id: id}); }
function finalTag(final, id) { return final ? tag("ok", "final", id) : tag("warn", "not final", id); }

function table(id, headers, rows, emptyText) {
  const head = el("tr", {}, ...headers.map((h) => el("th", {text: h, className: "text"})));
  const body = el("tbody");
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", {className: "empty", colspan: headers.length, text: emptyText})));
  }
  for (const cells of rows) body.append(el("tr", {}, ...cells));
  return el("table", {id: id}, el("thead", {}, head), body);
}

function fields(id, pairs) {
  // A two-column table of name / value; a value may be a node (a link, a tag).
  const body = el("tbody");
  for (const [name, value, className] of pairs) {
    const td = el("td", {className: className});
    if (value instanceof Node) td.append(value);
    else td.textContent = value === null || value === undefined || value === "" ? NA : String(value);
    body.append(el("tr", {}, el("th", {text: name}), td));
  }
  return el("table", {id: id, className: "fields"}, body);
}

function pager(items) {
  // [id, text, path or null]: a link when there is somewhere to go, grey text otherwise.
  return el("div", {className: "pager"}, ...items.map(([id, text, path]) =>
    path ? link(path, text, {id: id}) : el("span", {id: id, className: "disabled", text: text})));
}

function withQuery(path, parameters) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined) query.set(key, value);
  }
  const text = query.toString();
  return text ? path + "?" + text : path;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  const response = await fetch(API + path, {cache: "no-store"});
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.error) || "HTTP " + response.status);
  }
  return body;
}

// ---- latest blocks ------------------------------------------------------------------------

async function showBlocks(ledger, parameters) {
  const path = ledger ? withQuery("/blocks", {ledger: ledger, before: parameters.get("before")})
                      : "/blocks";
  const answer = await api(path);
  return answer.ledgers.map((item) => {
    const rows = item.blocks.map((block) => [
      el("td", {}, link(route("block", item.ledger, block.height), plain(block.height))),
      cell(when(block.sealed_at), "text"),
      cell(integer(block.tx_count)),
      cell(block.sealer_key_id, "text hex"),
      el("td", {className: "text"}, finalTag(block.final)),
    ]);
    const older = item.older === null ? null
      : withQuery(route("blocks", item.ledger), {before: item.older});
    return el("section", {className: "ledger-blocks", dataset: {ledger: item.ledger}},
      el("div", {className: "title"},
        el("h2", {text: "Latest blocks \u00b7 ledger " + item.ledger}),
        el("span", {className: "sub", text: "head " + plain(item.head_height) + " \u00b7 final "
          + plain(item.final_height) + (item.threshold ? " \u00b7 " + item.threshold
          + " witnesses needed" : " \u00b7 no finality policy: sealed is final")})),
      table("blocks-" + item.ledger, ["height", "sealed", "transactions", "seal key id", "final"],
            rows, "no blocks yet"),
      pager([["blocks-newest-" + item.ledger, "newest", ledger ? "/" : null],
             ["blocks-older-" + item.ledger, "older \u2192", older]]));
  });
}

// ---- a block ------------------------------------------------------------------------------

async function showBlock(ledger, height, parameters) {
  const limit = parameters.get("limit");
  const answer = await api(withQuery(route("block", ledger, height),
                                     {from: parameters.get("from"), limit: limit}));
  const block = answer.block;
  const previous = block.height > 0 ? link(route("block", ledger, block.height - 1),
                                            block.prev_hash, {className: "hex"}) : block.prev_hash;
  const header = el("section", {},
    el("div", {className: "title"},
      el("h2", {text: "Block"}),
      el("span", {className: "big", text: ledger + " #" + plain(block.height)}),
      finalTag(block.final, "block-final")),
    fields("block-header", [
      ["hash", block.hash, "hex"],
      ["previous hash", previous, "hex"],
      ["tx_root", block.tx_root, "hex"],
      ["blocks_root", block.blocks_root, "hex"],
      ["sealer key", block.sealer_key + "  (key id " + block.sealer_key_id + ")", "hex"],
      ["seal", block.seal, "hex"],
      ["sealed at", when(block.sealed_at)],
      ["transactions", integer(block.tx_count) + " (seq " + plain(block.first_seq) + " to "
        + plain(block.first_seq + Math.max(block.tx_count - 1, 0)) + ")"],
      ["size", integer(block.size_bytes) + " bytes"],
      ["source position", "ledger.verified partition " + block.source_partition
        + ", offsets up to " + plain(block.source_offset_end)],
      ["projected at", when(block.projected_at)],
      ["finality", finalityText(answer.finality, block.final)],
    ]),
    pager([["block-previous-height", "\u2190 block " + (block.height - 1),
            block.height > 0 ? route("block", ledger, block.height - 1) : null],
           ["block-next-height", "block " + (block.height + 1) + " \u2192",
            block.height < answer.finality.head_height ? route("block", ledger, block.height + 1)
                                                       : null]]));
  const cosignatures = answer.cosignatures.map((item) => [
    cell(item.witness_key_id, "text hex"), cell(when(item.signed_at), "text"),
    cell(item.signature, "text hex")]);
  const witnesses = el("section", {},
    el("h2", {text: "Cosignatures of this block"}),
    table("block-cosignatures", ["witness key id", "signed", "signature"], cosignatures,
          "no witness co-signed this very block (a cosignature of a later block covers it too)"));
  const transactions = answer.transactions.map((tx) => [
    cell(plain(tx.index_in_block)), cell(plain(tx.seq)),
    el("td", {className: "text hex"}, link(route("tx", tx.tx_id), tx.tx_id)),
    cell(tx.kind, "text"), cell(tx.key_id, "text hex"), cell(tx.external_ref, "text"),
    cell(tx.memo, "text")]);
  const base = route("block", ledger, block.height);
  const last = answer.from + answer.transactions.length;
  const list = el("section", {},
    el("h2", {text: "Transactions " + (answer.transactions.length ? integer(answer.from) + " to "
      + integer(last - 1) + " of " + integer(block.tx_count) : "")}),
    table("block-transactions", ["index", "seq", "tx_id", "kind", "key id", "external ref", "memo"],
          transactions, "an empty block"),
    pager([["block-transactions-previous", "\u2190 previous",
            answer.previous_from === null ? null
              : withQuery(base, {from: answer.previous_from, limit: limit})],
           ["block-transactions-next", "next \u2192",
            answer.next_from === null ? null
              : withQuery(base, {from: answer.next_from, limit: limit})]]));
  return [header, witnesses, list];
}

function finalityText(finality, final) {
  if (!finality.threshold) return "no finality policy: every sealed block is final";
  return (final ? "final" : "not final yet") + ": the ledger needs " + finality.threshold
    + " witnesses; final up to height " + plain(finality.final_height);
}

// ---- a transaction ------------------------------------------------------------------------

async function showTransaction(txId) {
  const answer = await api(route("tx", txId));
  const sections = [];
  const statusKind = {final: "ok", sealed: "warn", refused: "bad"}[answer.status] || "idle";
  sections.push(el("section", {},
    el("div", {className: "title"},
      el("h2", {text: "Transaction"}),
      el("span", {className: "big hex", text: answer.tx_id}),
      tag(statusKind, answer.status, "tx-status"))));
  for (const sealed of answer.sealed) sections.push(...sealedSections(sealed));
  if (answer.rejections.length) {
    const rows = answer.rejections.map((item) => [
      cell(item.code, "text"), cell(item.stage, "text"), cell(item.detail, "text detail"),
      cell(item.ledger, "text"), cell(when(item.rejected_at), "text"), cell(item.key_id, "text hex"),
      cell(item.source, "text")]);
    sections.push(el("section", {},
      el("h2", {text: answer.sealed.length ? "Refused submissions of the same tx_id" : "Refused"}),
      table("tx-rejections", ["code", "stage", "detail", "ledger", "refused at", "key id",
                              "submission"], rows, "")));
  }
  return sections;
}

function sealedSections(sealed) {
  const body = sealed.body || {};
  const where = el("span", {}, "ledger " + sealed.ledger + ", ",
    link(route("block", sealed.ledger, sealed.height), "block " + plain(sealed.height),
         {id: "tx-block-link"}),
    ", index " + sealed.index_in_block + ", seq " + plain(sealed.seq));
  const details = el("section", {},
    el("h2", {text: "Sealed in ledger " + sealed.ledger}),
    fields("tx-fields", [
      ["kind", sealed.kind],
      ["status", finalTag(sealed.final, "tx-final")],
      ["block and position", where],
      ["sealed at", when(sealed.sealed_at)],
      ["created", when(sealed.created_at)],
      ["expires", when(sealed.expires_at)],
      ["memo", sealed.memo],
      ["external ref", sealed.external_ref],
      ["metadata", metadataText(body.metadata)],
      ["reverses", sealed.reverses ? link(route("tx", sealed.reverses), sealed.reverses,
                                          {id: "tx-reverses"}) : "nothing"],
      ["reversed by", txLinks(sealed.reversed_by || [], "tx-reversed-by")],
      ["signer key id", sealed.signer_key_id || sealed.key_id, "hex"],
      ["signer public key", sealed.public_key, "hex"],
      ["signature", sealed.signature, "hex"],
      ["cosigning key ids", (sealed.cosigners || []).map((item) => item.key_id).join(", ")
        || "none (signed by one key)", "hex"],
      ["envelope", sealed.envelope_bytes ? sealed.envelope_bytes + " bytes, body version "
        + sealed.body_version : sealed.decode_error],
    ]));
  return [details, operationSection(sealed.ledger, body.operation, body.kind), proofSection(sealed)];
}

function metadataText(metadata) {
  const pairs = Object.entries(metadata || {});
  return pairs.length ? pairs.map(([key, value]) => key + "=" + value).join(", ") : "none";
}

function txLinks(txIds, id) {
  if (!txIds.length) return "not reversed";
  const span = el("span", {id: id});
  txIds.forEach((txId, index) => {
    if (index) span.append(", ");
    span.append(link(route("tx", txId), txId));
  });
  return span;
}

function operationSection(ledger, operation, kind) {
  const section = el("section", {}, el("h2", {text: "Operation \u00b7 " + (kind || NA)}));
  if (!operation) return section;
  if (Array.isArray(operation.postings)) {
    section.append(table("tx-postings", ["account", "asset", "amount (minor units)"],
      operation.postings.map((posting) => [
        el("td", {className: "text"}, link(route("account", ledger, posting.account),
                                            posting.account)),
        cell(posting.asset, "text"), amountCell(posting.amount)]), "no postings"));
    return section;
  }
  const pairs = Object.entries(operation).map(([name, value]) => {
    if (["account", "payer", "payee", "issuer_account"].includes(name)) {
      return [name, link(route("account", ledger, value), value)];
    }
    return [name, Array.isArray(value) ? value.join(", ") : value,
            typeof value === "string" && /^[0-9a-f]{32,}$/.test(value) ? "hex" : null];
  });
  section.append(fields("tx-operation", pairs));
  return section;
}

function proofSection(sealed) {
  const file = "proof-" + (sealed.body ? sealed.body.tx_id : "tx") + ".json";
  const txId = sealed.body ? sealed.body.tx_id : "";
  const download = el("a", {id: "proof-download", className: "button disabled",
                            href: API + route("proof", sealed.ledger, txId), download: file,
                            text: "Download proof"});
  const result = el("div", {id: "proof-check", className: "proof-result", text: "checking the proof\u2026"});
  const section = el("section", {id: "proof"},
    el("h2", {text: "Inclusion proof"}), download, result,
    el("div", {className: "note", text: "The same JSON as `ledger proof`; check it anywhere, "
      + "with no service at all:"}),
    el("code", {className: "command", id: "proof-command",
                text: "ledger verify-proof " + file + " --sealer-key <the sealer's public key>"}));
  checkProof(sealed, download, result);
  return section;
}

async function checkProof(sealed, download, result) {
  const count = renderCount;
  try {
    const answer = await api(route("proof", sealed.ledger, sealed.body.tx_id) + "/check");
    if (count !== renderCount) return;
    download.classList.remove("disabled");
    $("proof-command").textContent = "ledger verify-proof proof-" + answer.tx_id
      + ".json --sealer-key " + answer.sealer_key;
    if (answer.holds) {
      const summary = answer.summary;
      result.className = "proof-result ok";
      result.textContent = "Proof holds (checked by the server with ledger.proofs): tx in block "
        + summary.height + " at index " + summary.tx_index + ", anchored at block "
        + summary.anchor_height + ", sealed by " + answer.sealer_key_id + " (the sealer of block 0). "
        + (answer.final ? "Final: " : "Not final: ") + answer.final_detail + ".";
    } else {
      result.className = "proof-result bad";
      result.textContent = "Proof does NOT hold: " + answer.error;
    }
    result.dataset.holds = String(answer.holds);
  } catch (error) {
    if (count !== renderCount) return;
    result.className = "proof-result bad";
    result.textContent = error.message;
    result.dataset.holds = "unavailable";
  }
}

// ---- an account ---------------------------------------------------------------------------

async function showAccount(ledger, name, parameters) {
  const limit = parameters.get("limit");  // rows a page; the server's default when absent
  const answer = await api(withQuery(route("account", ledger), {
    account: name, before: parameters.get("before"), after: parameters.get("after"), limit: limit}));
  const summary = el("section", {},
    el("div", {className: "title"},
      el("h2", {text: "Account"}),
      el("span", {className: "big", text: answer.account}),
      tag(answer.status === "active" ? "ok" : "bad", answer.status, "account-status")),
    fields("account-fields", [
      ["ledger", answer.ledger],
      ["balance", money(answer.balance) + " " + answer.asset + " (minor units)"],
      ["held", money(answer.held)],
      ["available", money(answer.available)],
      ["asset", answer.asset + (answer.scale === null ? "" : ", scale " + answer.scale)],
      ["may go negative", answer.allow_negative ? "yes (issuer)" : "no"],
      ["max balance", money(answer.max_balance)],
      ["metadata", metadataText(answer.metadata)],
      ["opened", link(route("block", answer.ledger, answer.opened_height),
                      "block " + plain(answer.opened_height))],
      ["as of", "block " + plain(answer.updated_height)],
    ]));
  const rows = answer.statement.map((item) => [
    cell(plain(item.seq)), cell(when(item.sealed_at), "text"),
    el("td", {}, link(route("block", answer.ledger, item.height), plain(item.height))),
    el("td", {className: "text hex"}, link(route("tx", item.tx_id), shortHex(item.tx_id))),
    cell(item.kind, "text"), amountCell(item.amount), cell(money(item.balance_after)),
    cell(item.external_ref, "text"), cell(item.memo, "text")]);
  const base = route("account", answer.ledger, answer.account);
  const statement = el("section", {},
    el("h2", {text: "Statement \u00b7 newest first"}),
    table("statement", ["seq", "sealed", "block", "tx", "kind", "amount", "balance after",
                        "external ref", "memo"], rows, "no postings on this page"),
    pager([["statement-newest", "newest",
            parameters.has("before") || parameters.has("after") ? withQuery(base, {limit: limit})
                                                                : null],
           ["statement-newer", "\u2190 newer",
            answer.newer === null ? null : withQuery(base, {after: answer.newer, limit: limit})],
           ["statement-older", "older \u2192",
            answer.older === null ? null : withQuery(base, {before: answer.older, limit: limit})]]));
  return [summary, statement];
}

// ---- search -------------------------------------------------------------------------------

async function showSearch(query) {
  $("search-input").value = query;
  const answer = await api(withQuery("/search", {q: query}));
  if (answer.matches.length === 1) {
    location.replace("#" + answer.matches[0].route);  // one match: open it
    return null;
  }
  const items = answer.matches.map((match) => el("li", {}, link(match.route, match.label)));
  return [el("section", {},
    el("div", {className: "title"}, el("h2", {text: "Search"}),
       el("span", {className: "sub", id: "search-query", text: query})),
    answer.matches.length
      ? el("ul", {className: "matches", id: "search-results"}, ...items)
      : el("p", {id: "search-results", text: "Nothing matches: a tx_id is 32 hex digits, a block "
          + "hash 64; a height, an external reference or an account name must match exactly."}),
    answer.truncated ? el("p", {className: "note", text: "More matched; the first "
      + answer.matches.length + " are shown."}) : null)];
}

// ---- routing ------------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function parse(hash) {
  const text = hash.replace(/^#/, "") || "/";
  const [path, query] = text.split("?", 2);
  const parts = path.split("/").filter((part) => part !== "").map(decodeURIComponent);
  return {parts: parts, parameters: new URLSearchParams(query || "")};
}

async function render() {
  const count = ++renderCount;
  const hash = location.hash || "#/";
  view.dataset.state = "loading";
  let sections;
  try {
    const {parts, parameters} = parse(hash);
    const [page, ...rest] = parts;
    if (!page) sections = await showBlocks(null, parameters);
    else if (page === "blocks" && rest.length === 1) sections = await showBlocks(rest[0], parameters);
    else if (page === "block" && rest.length === 2) sections = await showBlock(rest[0], rest[1], parameters);
    else if (page === "tx" && rest.length === 1) sections = await showTransaction(rest[0]);
    else if (page === "account" && rest.length === 2) sections = await showAccount(rest[0], rest[1], parameters);
    else if (page === "search" && rest.length === 1) sections = await showSearch(rest[0]);
    else throw new ApiError(404, "no such page: " + hash);
  } catch (error) {
    sections = [el("section", {className: "error", id: "error", text: error.message})];
  }
  if (count !== renderCount || sections === null) return;  // navigated elsewhere meanwhile
  view.replaceChildren(...sections);
  view.dataset.route = hash;
  view.dataset.state = "ready";
  window.scrollTo(0, 0);
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("search-input").value.trim();
  if (query) location.hash = route("search", query);
});
window.addEventListener("hashchange", render);
render();
