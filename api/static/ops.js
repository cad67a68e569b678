// The SRE page: polls /api/v1/ops/summary and turns the cumulative counters it returns into
// rates (DB queries per second, hit ratio and per-tier shares per refresh interval) on the
// client. The summary covers the whole service: every worker of `memlayer serve --workers N`,
// whichever answers. Ratios are memlayer's (cache/stats.py): a lookup is answered by the
// near-cache, Redis (hit) or neither (miss, error, bypass: Postgres); hit ratio = (near + hit)
// / lookups, and the three tier shares add up to 1.

import { SOURCE_LABELS } from "./labels.js";

const SUMMARY_URL = "/api/v1/ops/summary";
const REFRESH_MS = 2000;
const HISTORY_POINTS = 90; // three minutes at one point per refresh

const COUNT_LABELS = {
  "fills.stored": "캐시 채우기 · 저장",
  "fills.stale_refused": "캐시 채우기 · 오래된 값 거부",
  "fills.lease_lost": "캐시 채우기 · 임대 놓침",
  "writes.ok": "기억 쓰기 · 성공",
  "writes.error": "기억 쓰기 · 실패",
  "cache_requests.error": "캐시 조회 · 오류",
  "cache_requests.bypass": "캐시 조회 · 우회",
};

const TIER_LABELS = { near: "프로세스 캐시 (near)", redis: "Redis", postgres: "Postgres" };

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const timeFormat = new Intl.DateTimeFormat("ko-KR", { timeStyle: "medium" });
const numberFormat = new Intl.NumberFormat("ko-KR", { maximumFractionDigits: 1 });

const state = { previous: null, history: [], paused: false, timer: null, inFlight: false };

function percent(ratio) {
  return ratio === null || ratio === undefined || !Number.isFinite(ratio)
    ? "—"
    : `${(ratio * 100).toFixed(1)}%`;
}

function latency(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (!Number.isFinite(seconds)) return "최대 버킷 초과";
  const ms = seconds * 1000;
  return ms < 1 ? `≤ ${ms.toFixed(2)} ms` : `≤ ${numberFormat.format(ms)} ms`;
}

function lookups(requests) {
  return (requests.near ?? 0) + requests.hit + requests.miss + requests.error + requests.bypass;
}

// Lookups answered by each tier (a server without a near-cache reports no "near").
function tierCounts(requests) {
  return {
    near: requests.near ?? 0,
    redis: requests.hit,
    postgres: requests.miss + requests.error + requests.bypass,
  };
}

function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${numberFormat.format(size)} ${units[unit]}`;
}

function sum(counts) {
  return Object.values(counts ?? {}).reduce((a, b) => a + b, 0);
}

function cell(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

// ---- one refresh ---------------------------------------------------------------------

function render(summary, now) {
  const requests = summary.cache_requests;
  const previous = state.previous;
  const elapsed = previous ? (now - previous.at) / 1000 : 0;

  $("hit-ratio").textContent = percent(summary.hit_ratio);
  $("hit-detail").textContent =
    `near ${requests.near ?? 0} · hit ${requests.hit} · miss ${requests.miss} · error ${requests.error} · bypass ${requests.bypass}`;

  const shares = summary.tier_shares;
  $("near-share").textContent = percent(shares?.near);
  $("tier-detail").textContent = shares
    ? `near ${percent(shares.near)} · Redis ${percent(shares.redis)} · Postgres ${percent(shares.postgres)}`
    : "조회 기록 없음";
  const nowCounts = tierCounts(requests);
  const beforeCounts = previous ? tierCounts(previous.summary.cache_requests) : null;
  const askedSince = beforeCounts ? sum(nowCounts) - sum(beforeCounts) : 0;
  $("tiers").replaceChildren(
    ...Object.keys(TIER_LABELS).map((tier) =>
      row(
        cell("th", TIER_LABELS[tier], { scope: "row" }),
        cell("td", askedSince > 0 ? percent((nowCounts[tier] - beforeCounts[tier]) / askedSince) : "—"),
        cell("td", percent(shares?.[tier])),
      ),
    ),
  );

  const near = summary.near_cache;
  if (near) {
    const rechecks = near.rechecks ?? {};
    const items = [
      ["무효화 연결 (워커)", `${numberFormat.format(near.links_up)} / ${numberFormat.format(summary.workers ?? 1)}`],
      ["항목 수", numberFormat.format(near.entries)],
      ["크기 (인코딩 기준)", bytes(near.bytes)],
      ["무효화 지연 p50", latency(near.invalidation_lag_seconds?.p50)],
      ["무효화 지연 p99", latency(near.invalidation_lag_seconds?.p99)],
      ["무효화로 제거", numberFormat.format(near.evictions?.invalidated ?? 0)],
      ["전체 비움 (연결 끊김 등)", numberFormat.format(sum(near.drops))],
      ["표본 재확인 · 일치", numberFormat.format((rechecks.consistent ?? 0) + (rechecks.raced ?? 0))],
      ["표본 재확인 · 불일치 (경보)", numberFormat.format((rechecks.mismatch ?? 0) + (rechecks.missing ?? 0))],
    ];
    $("near").replaceChildren(
      ...items.map(([name, value]) => row(cell("th", name, { scope: "row" }), cell("td", value))),
    );
  }

  if (previous && elapsed > 0) {
    const qps = (summary.db_queries_total - previous.summary.db_queries_total) / elapsed;
    $("db-qps").textContent = numberFormat.format(Math.max(qps, 0));
  } else {
    $("db-qps").textContent = "…";
  }
  $("db-total").textContent = `누적 ${numberFormat.format(summary.db_queries_total)}회`;

  const workers = summary.workers ?? 1;
  const opened = summary.workers_breaker_open ?? (summary.breaker_open ? 1 : 0);
  const breaker = $("breaker");
  breaker.textContent = opened === 0 ? "닫힘 (정상)" : workers > 1 ? `열림 (${opened}/${workers})` : "열림";
  breaker.dataset.state = opened === 0 ? "closed" : "open";
  $("breaker-detail").textContent =
    opened === 0
      ? "모든 워커가 Redis를 사용 중"
      : `워커 ${workers}개 중 ${opened}개가 Redis를 건너뛰고 DB에서 읽는 중`;
  $("workers").textContent = numberFormat.format(workers);
  $("ws-active").textContent = numberFormat.format(summary.ws_sessions_active);

  $("latency").replaceChildren(
    ...Object.entries(summary.load_latency_seconds).map(([source, q]) =>
      row(
        cell("th", SOURCE_LABELS[source] ?? source, { scope: "row" }),
        cell("td", latency(q.p50)),
        cell("td", latency(q.p99)),
      ),
    ),
  );

  const counts = [];
  for (const group of ["fills", "writes", "cache_requests"]) {
    for (const [name, value] of Object.entries(summary[group] ?? {})) {
      const label = COUNT_LABELS[`${group}.${name}`];
      if (label) counts.push(row(cell("th", label, { scope: "row" }), cell("td", numberFormat.format(value))));
    }
  }
  $("counts").replaceChildren(...counts);

  // The interval ratio answers "how is the cache doing right now"; the cumulative one
  // hides a fresh drop behind hours of history.
  let interval = null;
  if (previous) {
    const asked = lookups(requests) - lookups(previous.summary.cache_requests);
    const served = (requests.near ?? 0) + requests.hit;
    const servedBefore = (previous.summary.cache_requests.near ?? 0) + previous.summary.cache_requests.hit;
    if (asked > 0) interval = (served - servedBefore) / asked;
  }
  state.history.push({ at: now, interval, cumulative: summary.hit_ratio });
  if (state.history.length > HISTORY_POINTS) state.history.shift();
  state.previous = { at: now, summary };
  drawChart();
}

// ---- the chart (inline SVG, no library) ----------------------------------------------

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Consecutive known values become one path segment; an interval without lookups is a gap.
function linePath(points, value, x, y) {
  let d = "";
  let drawing = false;
  points.forEach((point, i) => {
    const v = value(point);
    if (v === null || v === undefined || !Number.isFinite(v)) {
      drawing = false;
      return;
    }
    d += `${drawing ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
    drawing = true;
  });
  return d.trim();
}

function drawChart() {
  const chart = $("hit-chart");
  const width = 640;
  const height = 200;
  const pad = { left: 44, right: 12, top: 10, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const points = state.history;
  // The newest point sits at the right edge; older ones walk left as history grows.
  const x = (i) => pad.left + ((i + HISTORY_POINTS - points.length) / (HISTORY_POINTS - 1)) * plotW;
  const y = (ratio) => pad.top + (1 - ratio) * plotH;

  const nodes = [];
  for (const ratio of [0, 0.5, 1]) {
    nodes.push(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(ratio), y2: y(ratio) }));
    nodes.push(
      svg("text", { class: "axis-label", x: pad.left - 6, y: y(ratio) + 4, "text-anchor": "end" }, `${ratio * 100}%`),
    );
  }
  const spanSeconds = Math.round(((HISTORY_POINTS - 1) * REFRESH_MS) / 1000);
  nodes.push(svg("text", { class: "axis-label", x: pad.left, y: height - 6 }, `-${spanSeconds}초`));
  nodes.push(svg("text", { class: "axis-label", x: width - pad.right, y: height - 6, "text-anchor": "end" }, "지금"));

  const cumulative = linePath(points, (p) => p.cumulative, x, y);
  if (cumulative) nodes.push(svg("path", { class: "cumulative", d: cumulative }));
  const interval = linePath(points, (p) => p.interval, x, y);
  if (interval) nodes.push(svg("path", { class: "interval", d: interval }));
  // A lone point has no segment to draw; mark it so a single refresh is still visible.
  points.forEach((p, i) => {
    if (p.interval !== null && Number.isFinite(p.interval)) {
      nodes.push(svg("circle", { class: "interval", cx: x(i), cy: y(p.interval), r: 2.5 }));
    }
  });
  const last = points.at(-1);
  if (last && last.cumulative !== null && Number.isFinite(last.cumulative)) {
    nodes.push(svg("circle", { class: "cumulative", cx: x(points.length - 1), cy: y(last.cumulative), r: 3.5 }));
  }
  chart.replaceChildren(...nodes);
}

// ---- polling -------------------------------------------------------------------------

async function refresh() {
  if (state.inFlight) return;
  clearTimeout(state.timer);
  state.timer = null;
  state.inFlight = true;
  try {
    const response = await fetch(SUMMARY_URL, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const now = Date.now();
    render(await response.json(), now);
    $("ops-error").textContent = "";
    $("updated").textContent = `마지막 갱신 ${timeFormat.format(new Date(now))}`;
  } catch (err) {
    $("ops-error").textContent = `요약을 가져오지 못했습니다 (${err.message}). 계속 다시 시도합니다.`;
  } finally {
    state.inFlight = false;
  }
  schedule();
}

// One request at a time: the next poll is planned only after the previous one finished.
function schedule() {
  if (state.paused || document.hidden || state.inFlight || state.timer !== null) return;
  state.timer = setTimeout(refresh, REFRESH_MS);
}

function main() {
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").setAttribute("aria-pressed", String(state.paused));
    $("pause").textContent = state.paused ? "다시 시작" : "일시 정지";
    if (state.paused) {
      clearTimeout(state.timer);
      state.timer = null;
    } else {
      refresh();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !state.paused) refresh();
  });
  drawChart();
  refresh();
}

main();
