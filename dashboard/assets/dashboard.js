// 业扩报装管理驾驶舱 Yekuo dashboard: one script for every page (body[data-page]).
// The bearer token is taken once from ?token= or the sign-in form and kept in sessionStorage (this tab
// only); every JSON call sends it, and the API decides what the caller may see. Pages poll every 2 s.
"use strict";

(() => {
  const TOKEN_KEY = "yekuo.dashboard.token";
  const POLL_MS = 2000;
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);
  let me = null;
  let labels = {};
  let renders = 0;

  class HttpError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  // ---- token ------------------------------------------------------------------------------------------

  function takeToken() {
    const url = new URL(window.location.href);
    const given = url.searchParams.get("token");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given.trim());
      url.searchParams.delete("token");
      window.history.replaceState(null, "", url.toString());
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function askForToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin").hidden = false;
    $("content").innerHTML = "";
    $("status").textContent = message || "请登录 Please sign in";
  }

  async function get(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` },
      cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new HttpError(response.status, body.detail || body.error || response.statusText);
    }
    return body;
  }

  // ---- formatting -------------------------------------------------------------------------------------

  const esc = (value) =>
    String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const label = (kind, code) => (code == null || code === "" ? "—" : (labels[kind] && labels[kind][code]) || code);
  const pct = (share) => (share == null ? "—" : `${(share * 100).toFixed(1)}%`);
  const workdays = (seconds) => (seconds == null ? null : Math.round((seconds / 86400) * 100) / 100);
  const when = (iso) =>
    iso ? new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }) : "—";

  function age(seconds) {
    if (seconds == null) return "—";
    const s = Math.abs(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const text = d ? `${d}天${h}小时` : h ? `${h}小时${m}分` : `${m}分`;
    return seconds < 0 ? `-${text}` : text;
  }

  const caseLink = (number) =>
    `<a href="/dashboard/case?n=${encodeURIComponent(number)}" data-case-link="${esc(number)}">${esc(number)}</a>`;

  function table(id, columns, rows, rowAttrs) {
    const target = $(id);
    if (!rows.length) {
      target.innerHTML = '<p class="empty">暂无 None</p>';
      return;
    }
    const head = columns.map((c) => `<th class="${c.num ? "num" : ""}">${c.title}</th>`).join("");
    const body = rows
      .map((row) => {
        const attrs = rowAttrs ? rowAttrs(row) : "";
        const cells = columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.cell(row)}</td>`).join("");
        return `<tr ${attrs}>${cells}</tr>`;
      })
      .join("");
    target.innerHTML = `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  function cards(id, items) {
    $(id).innerHTML = items
      .map(([title, value, cls]) => `<div class="card"><div class="label">${title}</div><div class="value ${cls || ""}">${esc(value)}</div></div>`)
      .join("");
  }

  function layout(html) {
    if (!$("content").dataset.page) {
      $("content").innerHTML = html;
      $("content").dataset.page = page;
    }
  }

  const panel = (title, body) => `<section class="panel"><h2>${title}</h2>${body}</section>`;
  const chartBox = (name) => `<div class="chart" id="chart-${name}" data-chart="${name}"></div>`;

  // ---- charts (Apache ECharts, served by the API from node_modules) -----------------------------------

  function chart(name, option) {
    const el = $(`chart-${name}`);
    const instance = echarts.getInstanceByDom(el) || echarts.init(el);
    instance.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0, type: "scroll" },
        grid: { left: 10, right: 20, top: 36, bottom: 10, containLabel: true },
        ...option,
      },
      true,
    );
  }

  function bars(name, categories, series, { stack = false, horizontal = false, unit = "" } = {}) {
    const categoryAxis = { type: "category", data: categories, axisLabel: { interval: 0, rotate: horizontal ? 0 : 30 } };
    const valueAxis = { type: "value", name: unit };
    chart(name, {
      xAxis: horizontal ? valueAxis : categoryAxis,
      yAxis: horizontal ? { ...categoryAxis, inverse: true } : valueAxis,
      series: series.map((s) => ({ type: "bar", stack: stack ? "total" : undefined, ...s })),
    });
  }

  window.addEventListener("resize", () =>
    document.querySelectorAll("[data-chart]").forEach((el) => echarts.getInstanceByDom(el)?.resize()),
  );

  // ---- overview 总览 -----------------------------------------------------------------------------------

  const STAGE_ORDER = () => Object.keys(labels.Stage || {});
  const CATEGORY_ORDER = () => Object.keys(labels.Category || {});
  const LEVELS = ["NOTICE", "WARNING", "BREACH"];
  const DEPARTMENTS = () => Object.keys(labels.Department || {});

  function byKeyOrder(keys, order) {
    return [...keys].sort((a, b) => {
      const ia = order.indexOf(a);
      const ib = order.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || String(a).localeCompare(String(b));
    });
  }

  async function overview() {
    layout(`
      <div class="cards" id="overview-cards"></div>
      <div class="grid">
        ${panel("在办工单（按环节、类别） <small>Open cases by stage and category</small>", chartBox("open-by-stage"))}
        ${panel("瓶颈环节（平均/最长等待） <small>Bottleneck stages: average / longest wait, days</small>", chartBox("bottlenecks"))}
        ${panel("按时率（按环节） <small>On-time rate by stage</small>", chartBox("on-time-stage"))}
        ${panel("按时率（按类别） <small>On-time rate by category</small>", chartBox("on-time-category"))}
        ${panel("办理时长（按环节，工作日） <small>Handling time by stage: average / longest, working days</small>", chartBox("handling-stage"))}
        ${panel("办理时长（按类别，工作日） <small>Handling time by category, working days</small>", chartBox("handling-category"))}
        ${panel("按月趋势：按时率（按类别） <small>Monthly trend: on-time rate by category</small>", chartBox("trend-category"))}
        ${panel("按月趋势：平均办理时长（按环节） <small>Monthly trend: average handling time by stage</small>", chartBox("trend-stage"))}
        ${panel("预警与超期（按部门） <small>Warnings and breaches by department</small>", chartBox("crossings-department"))}
        ${panel("预警与超期（按责任人） <small>Warnings and breaches by handler</small>", chartBox("crossings-handler"))}
        ${panel("工单账龄（按部门） <small>Ageing buckets by department</small>", chartBox("ageing"))}
        ${panel("瓶颈明细 <small>Bottleneck details</small>", '<div id="bottleneck-table"></div>')}
      </div>`);
    const data = await get("/dashboard/api/overview");

    const stageRows = data.open_by_stage.filter((r) => r.stage);
    const waitingRows = data.open_by_stage.filter((r) => !r.stage);
    const stages = byKeyOrder(new Set(stageRows.map((r) => r.stage)), STAGE_ORDER());
    const steps = [...new Set(waitingRows.map((r) => r.awaiting_customer))];
    const columns = [...stages.map((s) => ["stage", s]), ...steps.map((s) => ["step", s])];
    const categories = byKeyOrder(new Set(data.open_by_stage.map((r) => r.category)), CATEGORY_ORDER());
    bars(
      "open-by-stage",
      columns.map(([kind, code]) => (kind === "stage" ? label("Stage", code) : `待客户:${label("CustomerStep", code)}`)),
      categories.map((category) => ({
        name: label("Category", category),
        data: columns.map(([kind, code]) =>
          data.open_by_stage
            .filter((r) => r.category === category && (kind === "stage" ? r.stage === code : !r.stage && r.awaiting_customer === code))
            .reduce((sum, r) => sum + r.cases, 0),
        ),
      })),
      { stack: true, unit: "件" },
    );

    const kpiBars = (name, dimension, kind, order) => {
      const groups = byKeyOrder(Object.keys(data.kpi[dimension] || {}), order);
      const names = groups.map((g) => label(kind, g));
      const tallies = groups.map((g) => data.kpi[dimension][g]);
      if (name.startsWith("on-time")) {
        bars(name, names, [{ name: "按时率 On-time %", data: tallies.map((t) => Math.round((t.on_time_rate ?? 0) * 1000) / 10) }], { unit: "%" });
      } else {
        bars(name, names, [
          { name: "平均 Average", data: tallies.map((t) => workdays(t.average_seconds)) },
          { name: "最长 Longest", data: tallies.map((t) => workdays(t.longest_seconds)) },
        ], { unit: "工作日" });
      }
    };
    kpiBars("on-time-stage", "stage", "Stage", STAGE_ORDER());
    kpiBars("on-time-category", "category", "Category", CATEGORY_ORDER());
    kpiBars("handling-stage", "stage", "Stage", STAGE_ORDER());
    kpiBars("handling-category", "category", "Category", CATEGORY_ORDER());

    const trend = (name, dimension, kind, order, value, unit) => {
      const months = Object.keys(data.trend[dimension] || {}).sort();
      const groups = byKeyOrder(new Set(months.flatMap((m) => Object.keys(data.trend[dimension][m]))), order);
      chart(name, {
        xAxis: { type: "category", data: months },
        yAxis: { type: "value", name: unit },
        series: groups.map((g) => ({
          type: "line",
          name: label(kind, g),
          connectNulls: true,
          data: months.map((m) => (data.trend[dimension][m][g] ? value(data.trend[dimension][m][g]) : null)),
        })),
      });
    };
    trend("trend-category", "category", "Category", CATEGORY_ORDER(), (t) => Math.round((t.on_time_rate ?? 0) * 1000) / 10, "%");
    trend("trend-stage", "stage", "Stage", STAGE_ORDER(), (t) => workdays(t.average_seconds), "工作日");

    const crossingBars = (name, key, kind, top) => {
      const totals = {};
      data.crossings.forEach((r) => { totals[r[key] ?? ""] = (totals[r[key] ?? ""] || 0) + r.crossings; });
      let groups = Object.keys(totals).sort((a, b) => totals[b] - totals[a]);
      if (kind) groups = byKeyOrder(groups, DEPARTMENTS());
      groups = groups.slice(0, top);
      bars(
        name,
        groups.map((g) => (kind ? label(kind, g) : g || "未指派 unassigned")),
        LEVELS.map((level) => ({
          name: label("Level", level),
          data: groups.map((g) => data.crossings.filter((r) => (r[key] ?? "") === g && r.level === level).reduce((s, r) => s + r.crossings, 0)),
        })),
        { stack: true, unit: "次" },
      );
    };
    crossingBars("crossings-department", "department", "Department", 20);
    crossingBars("crossings-handler", "handler", null, 12);

    const ageing = [...data.ageing].sort((a, b) => DEPARTMENTS().indexOf(a.department) - DEPARTMENTS().indexOf(b.department));
    const buckets = [["aged_under_1d", "<1天"], ["aged_1_3d", "1-3天"], ["aged_3_7d", "3-7天"], ["aged_over_7d", ">7天"]];
    bars(
      "ageing",
      ageing.map((r) => label("Department", r.department)),
      buckets.map(([key, name]) => ({ name, data: ageing.map((r) => r[key]) })),
      { stack: true, unit: "项" },
    );

    bars(
      "bottlenecks",
      data.bottlenecks.map((r) => label("Stage", r.stage)),
      [
        { name: "平均等待 Average wait", data: data.bottlenecks.map((r) => workdays(r.average_wait_seconds)) },
        { name: "最长等待 Longest wait", data: data.bottlenecks.map((r) => workdays(r.longest_wait_seconds)) },
      ],
      { horizontal: true, unit: "天" },
    );
    table("bottleneck-table", [
      { title: "环节 Stage", cell: (r) => esc(label("Stage", r.stage)) },
      { title: "在办 Open", num: true, cell: (r) => r.open_items },
      { title: "平均等待 Average", num: true, cell: (r) => age(r.average_wait_seconds) },
      { title: "最长等待 Longest", num: true, cell: (r) => age(r.longest_wait_seconds) },
      { title: "已超期时钟 Overdue clocks", num: true, cell: (r) => (r.clocks_overdue ? `<span class="late">${r.clocks_overdue}</span>` : 0) },
    ], data.bottlenecks);

    const period = Object.values(data.kpi.period || {});
    const clocks = period.reduce((s, t) => s + t.clocks, 0);
    const onTime = period.reduce((s, t) => s + t.on_time, 0);
    const count = (level) => data.crossings.filter((r) => r.level === level).reduce((s, r) => s + r.crossings, 0);
    cards("overview-cards", [
      ["在办环节 Open stages", stageRows.reduce((s, r) => s + r.cases, 0)],
      ["待客户 Awaiting customer", waitingRows.reduce((s, r) => s + r.cases, 0)],
      ["按时率 On-time rate", clocks ? pct(onTime / clocks) : "—"],
      ["全环节按时送电 Energised on time", `${data.energised_on_time} / ${data.energised}`],
      ["时限预警 Warnings", count("WARNING"), "warn"],
      ["已超期 Breaches", count("BREACH"), "late"],
    ]);
  }

  // ---- department 部门 ---------------------------------------------------------------------------------

  function chosenDepartment() {
    const asked = new URL(window.location.href).searchParams.get("d");
    if (asked) return asked;
    return DEPARTMENTS().includes(me.department) ? me.department : DEPARTMENTS()[0];
  }

  async function department() {
    const chosen = chosenDepartment();
    const options = (me.role === "staff" ? [me.department] : DEPARTMENTS())
      .map((d) => `<option value="${esc(d)}" ${d === chosen ? "selected" : ""}>${esc(label("Department", d))}</option>`)
      .join("");
    layout(`
      <div class="toolbar"><label>部门 Department <select id="department-select">${options}</select></label></div>
      <div class="cards" id="department-cards"></div>
      <div class="grid">
        ${panel("在手时长（已办，工作日历时） <small>Time in hand of completed items, days</small>", chartBox("department-in-hand"))}
        ${panel("责任人在办量 <small>Open items per handler</small>", chartBox("department-handlers"))}
      </div>
      ${panel("待办队列 <small>Queue (oldest first)</small>", '<div id="queue-table"></div>')}
      ${panel("未确认通知 <small>Unacknowledged notifications</small>", '<div id="inbox-table"></div>')}
      ${panel("在途时限 <small>Open clocks held by this department</small>", '<div id="department-clocks"></div>')}`);
    $("department-select").onchange = (e) => {
      window.location.search = `?d=${encodeURIComponent(e.target.value)}`;
    };
    const data = await get(`/dashboard/api/departments/${encodeURIComponent(chosen)}`);
    const now = Date.parse(data.now);
    cards("department-cards", [
      ["待办 Queue", data.queue.length],
      ["未确认通知 Unacknowledged", data.inbox.length],
      ["通知已逾期 Overdue notices", data.inbox.filter((n) => n.overdue).length, "late"],
      ["在途时限 Open clocks", data.open_clocks.length],
      ["已超期时钟 Overdue clocks", data.open_clocks.filter((c) => c.deadline_at && Date.parse(c.deadline_at) < now).length, "late"],
    ]);
    bars(
      "department-in-hand",
      data.time_in_hand.map((r) => `${label("Kind", r.kind)} (${r.completed_items})`),
      [
        { name: "平均 Average", data: data.time_in_hand.map((r) => workdays(r.average_seconds)) },
        { name: "最长 Longest", data: data.time_in_hand.map((r) => workdays(r.longest_seconds)) },
      ],
      { unit: "天" },
    );
    bars(
      "department-handlers",
      data.handlers.map((r) => r.handler_name || r.handler_id),
      [{ name: "在办 Open items", data: data.handlers.map((r) => r.open_items) }],
      { unit: "项" },
    );
    table("queue-table", [
      { title: "工单 Case", cell: (r) => caseLink(r.case_number) },
      { title: "环节 Stage", cell: (r) => `${esc(label("Stage", r.stage))} ${r.kind === "REVIEW" ? "（会签）" : ""}` },
      { title: "责任人 Handler", cell: (r) => esc(r.handler_name || "未指派 unassigned") },
      { title: "接收 Received", cell: (r) => when(r.received_at) },
      { title: "在手 Age", num: true, cell: (r) => age(r.age_seconds) },
      { title: "时限 Due", cell: (r) => when(r.due_at) },
    ], data.queue, (r) => (r.due_at && Date.parse(r.due_at) < now ? 'class="late"' : ""));
    table("inbox-table", [
      { title: "工单 Case", cell: (r) => caseLink(r.case_number) },
      { title: "类型 Kind", cell: (r) => esc(r.kind) },
      { title: "内容 Message", cell: (r) => esc(r.message) },
      { title: "发出 Sent", cell: (r) => when(r.created_at) },
      { title: "等待 Age", num: true, cell: (r) => age(r.age_seconds) },
      { title: "应确认 Due", cell: (r) => when(r.due_at) },
      { title: "已升级 Escalated", cell: (r) => when(r.escalated_at) },
    ], data.inbox, (r) => (r.overdue ? 'class="late"' : ""));
    clockTable("department-clocks", data.open_clocks, now);
  }

  function clockTable(id, clocks, now) {
    table(id, [
      { title: "工单 Case", cell: (c) => caseLink(c.case_number) },
      { title: "环节 Stage", cell: (c) => `${esc(label("Stage", c.stage))} ${c.kind === "STAGE" ? "" : `（${esc(label("Kind", c.kind))}${c.review_department ? " " + esc(label("Department", c.review_department)) : ""}）`}` },
      { title: "类别 Category", cell: (c) => esc(label("Category", c.category)) },
      { title: "责任部门 Department", cell: (c) => esc(label("Department", c.holder_department)) },
      { title: "责任人 Handler", cell: (c) => esc(c.holder_handler || "—") },
      { title: "期限 Limit", num: true, cell: (c) => `${c.limit_days} 工作日` },
      { title: "截止 Deadline", cell: (c) => (c.paused ? "暂停 paused" : `${when(c.deadline_at)}${c.deadline_provisional ? " 暂定" : ""}`) },
      { title: "剩余 Left", num: true, cell: (c) => (c.deadline_at ? age((Date.parse(c.deadline_at) - now) / 1000) : "—") },
      { title: "下一级 Next level", cell: (c) => (c.next_level ? `${esc(label("Level", c.next_level))} ${when(c.next_due_at)}` : "—") },
    ], clocks, (c) => `data-clock="${esc(c.clock_id)}" ${c.deadline_at && Date.parse(c.deadline_at) < now ? 'class="late"' : ""}`);
  }

  // ---- SLA 时限 ----------------------------------------------------------------------------------------

  async function sla() {
    const asked = new URL(window.location.href).searchParams.get("d") || "";
    const options = ['<option value="">全部 All</option>', ...DEPARTMENTS().map((d) => `<option value="${esc(d)}" ${d === asked ? "selected" : ""}>${esc(label("Department", d))}</option>`)].join("");
    layout(`
      ${me.role === "staff" ? "" : `<div class="toolbar"><label>部门 Department <select id="sla-department">${options}</select></label></div>`}
      <div class="grid">
        ${panel("在途时限剩余时间 <small>Open clocks by time left</small>", chartBox("sla-left"))}
        ${panel("已记录预警与超期（按环节） <small>Recorded warnings and breaches by stage</small>", chartBox("sla-levels"))}
      </div>
      ${panel("最近的预警与超期 <small>Latest warnings and breaches (newest first)</small>", '<div id="crossings-table"></div>')}
      ${panel("临近截止的在途时限 <small>Open clocks nearest their deadline</small>", '<div id="clocks-table"></div>')}`);
    const select = $("sla-department");
    if (select) select.onchange = (e) => { window.location.search = e.target.value ? `?d=${encodeURIComponent(e.target.value)}` : ""; };
    const filter = asked ? `department=${encodeURIComponent(asked)}&` : "";
    const [clocks, crossings] = await Promise.all([
      get(`/sla/open-clocks?${filter}limit=100`),
      get(`/sla/crossings?${filter}limit=100`),
    ]);
    const now = Date.now();
    const buckets = [["已超期 overdue", -Infinity, 0], ["<1天", 0, 1], ["1-3天", 1, 3], ["3-7天", 3, 7], [">7天", 7, Infinity]];
    const left = (c) => (Date.parse(c.deadline_at) - now) / 86400000;
    bars("sla-left", [...buckets.map((b) => b[0]), "暂停 paused"], [{
      name: "时钟 Clocks",
      data: [
        ...buckets.map(([, lo, hi]) => clocks.filter((c) => c.deadline_at && left(c) >= lo && left(c) < hi).length),
        clocks.filter((c) => !c.deadline_at).length,
      ],
    }], { unit: "个" });
    const stages = byKeyOrder(new Set(crossings.map((c) => c.stage)), STAGE_ORDER());
    bars("sla-levels", stages.map((s) => label("Stage", s)), LEVELS.map((level) => ({
      name: label("Level", level),
      data: stages.map((s) => crossings.filter((c) => c.stage === s && c.level === level).length),
    })), { stack: true, unit: "次" });
    table("crossings-table", [
      { title: "发生 Crossed", cell: (c) => when(c.crossed_at) },
      { title: "级别 Level", cell: (c) => `<span class="badge ${c.level === "BREACH" ? "bad" : c.level === "WARNING" ? "warn" : "ok"}">${esc(label("Level", c.level))}</span>` },
      { title: "工单 Case", cell: (c) => caseLink(c.case_number) },
      { title: "环节 Stage", cell: (c) => esc(label("Stage", c.stage)) },
      { title: "已用 Used", num: true, cell: (c) => pct(c.share) },
      { title: "责任部门 Department", cell: (c) => esc(label("Department", c.department)) },
      { title: "责任人 Handler", cell: (c) => esc(c.handler || "—") },
      { title: "规则 Rules", cell: (c) => esc(`${c.rule_set}@${c.rule_version}`) },
    ], crossings, (c) => `data-crossing="${esc(c.case_number)}" data-level="${esc(c.level)}" data-department="${esc(c.department)}"`);
    clockTable("clocks-table", clocks, now);
  }

  // ---- case 工单 ---------------------------------------------------------------------------------------

  async function caseView() {
    const number = new URL(window.location.href).searchParams.get("n") || "";
    layout(`
      <form class="toolbar" id="case-form"><label>工单编号 Case number <input id="case-number" value="${esc(number)}"></label>
        <button type="submit">查看 Show</button></form>
      <div id="case-body"></div>`);
    $("case-form").onsubmit = (e) => {
      e.preventDefault();
      window.location.search = `?n=${encodeURIComponent($("case-number").value.trim())}`;
    };
    if (!number) {
      $("case-body").innerHTML = '<p class="empty">输入工单编号，或从部门、时限页面点击工单。Enter a case number, or follow a link from the department or SLA page.</p>';
      return;
    }
    if (!$("case-cards")) {
      $("case-body").innerHTML = `
        <div class="cards" id="case-cards"></div>
        <div class="grid">
          ${panel("在手时长（按部门、责任人，工作日） <small>Time in hand by department and handler, working days</small>", chartBox("case-in-hand"))}
          ${panel("超期时钟与责任 <small>Late clocks and who held them</small>", '<div id="late-table"></div>')}
        </div>
        ${panel("各环节责任人 <small>Who held each stage</small>", '<div id="holders-table"></div>')}
        ${panel("事件时间线 <small>Timeline of events</small>", '<div id="events-table"></div>')}`;
    }
    const path = `/cases/${encodeURIComponent(number)}`;
    const [progress, holders, history, responsibility, verdict] = await Promise.allSettled([
      get(`${path}/progress`),
      get(`/dashboard/api/cases/${encodeURIComponent(number)}/holders`),
      get(`${path}/history`),
      get(`${path}/responsibility`),
      get(`${path}/verify`),
    ]);
    for (const result of [progress, holders]) {
      if (result.status === "rejected") throw result.reason;
    }
    const auditNote = (r) => (r.status === "rejected" ? `<p class="empty">需要经理或审计角色 Manager or auditor role needed (${esc(r.reason.message)})</p>` : null);
    const p = progress.value;
    const intact = verdict.status === "fulfilled" ? verdict.value.intact : null;
    cards("case-cards", [
      ["工单 Case", p.case_number],
      ["类别 Category", `${label("Category", p.category)}${p.fast_track ? "（三零）" : ""}`],
      ["状态 Status", p.status_label || label("CaseStatus", p.status)],
      ["下一步 Next step", p.next_step || "—"],
      ["预计完成 Expected", p.expected_completion || "—"],
      ["哈希链 Hash chain", intact == null ? "—" : intact ? "完整 intact" : `断裂 BROKEN: ${verdict.value.problem}`, intact === false ? "late" : ""],
    ]);
    table("holders-table", [
      { title: "环节 Stage", cell: (h) => `${esc(label("Stage", h.stage))}${h.kind === "REVIEW" ? "（会签）" : ""}` },
      { title: "部门 Department", cell: (h) => esc(label("Department", h.department)) },
      { title: "责任人 Handler", cell: (h) => esc(h.handler_name || "未指派 unassigned") },
      { title: "接收 Received", cell: (h) => when(h.received_at) },
      { title: "完成 Completed", cell: (h) => when(h.completed_at) },
      { title: "结果 Outcome", cell: (h) => esc(h.outcome || "在办 open") },
      { title: "在手 Held", num: true, cell: (h) => age(((h.completed_at ? Date.parse(h.completed_at) : Date.now()) - Date.parse(h.received_at)) / 1000) },
    ], holders.value);
    if (history.status === "fulfilled") {
      table("events-table", [
        { title: "#", num: true, cell: (e) => e.version },
        { title: "发生 Occurred", cell: (e) => when(e.occurred_at) },
        { title: "事件 Event", cell: (e) => esc(e.type) },
        { title: "经办 Actor", cell: (e) => esc(e.actor ? `${e.actor.name} (${e.actor.person_id})` : "—") },
        { title: "部门 Department", cell: (e) => esc(e.actor ? label("Department", e.actor.department) : "—") },
        { title: "渠道 Channel", cell: (e) => esc(label("Channel", e.channel)) },
        { title: "原因 Reason", cell: (e) => esc(e.reason || "") },
      ], history.value, (e) => (e.type === "SlaThresholdCrossed" ? 'class="warn"' : ""));
    } else {
      $("events-table").innerHTML = auditNote(history);
    }
    if (responsibility.status === "fulfilled") {
      const r = responsibility.value;
      const late = r.clocks.filter((c) => c.verdict === "LATE" || c.verdict === "RUNNING_LATE" || c.recorded.length);
      table("late-table", [
        { title: "时钟 Clock", cell: (c) => `${esc(label("Stage", c.clock.stage))}（${esc(label("Kind", c.clock.kind))}）` },
        { title: "期限 Limit", num: true, cell: (c) => `${c.clock.limit_days} 工作日` },
        { title: "已用 Used", num: true, cell: (c) => pct(c.reading.share) },
        { title: "结论 Verdict", cell: (c) => esc({ LATE: "超期 late", RUNNING_LATE: "在途超期 running late", ON_TIME: "按时 on time", RUNNING: "在途 running" }[c.verdict] || c.verdict) },
        { title: "到达级别时的责任方 Holder at each level", cell: (c) => c.reading.crossings.filter((x) => x.at).map((x) => `${esc(label("Level", x.level))}: ${esc(label("Department", x.department))} ${esc(x.handler || "")}`).join("<br>") },
      ], late, (c) => (c.verdict.includes("LATE") ? 'class="late"' : ""));
      const held = r.in_hand.filter((h) => h.seconds > 0);
      bars("case-in-hand", held.map((h) => `${label("Department", h.department)} ${h.handler || ""}`.trim()), [
        { name: "在手 In hand", data: held.map((h) => workdays(h.seconds)) },
      ], { horizontal: true, unit: "工作日" });
    } else {
      $("late-table").innerHTML = auditNote(responsibility);
    }
  }

  // ---- parties 参建单位 --------------------------------------------------------------------------------

  const GRADE_CLASS = { A: "ok", B: "ok", C: "warn", D: "bad" };
  const share = (value) => (value == null ? null : Math.round(value * 1000) / 10);

  async function parties() {
    layout(`
      <div class="cards" id="parties-cards"></div>
      <div class="grid">
        ${panel("按时率与一次通过率 <small>On-time and first-pass rate by party, %</small>", chartBox("parties-rates"))}
        ${panel("承办工单、返工与投诉 <small>Cases, reworks and complaints by party</small>", chartBox("parties-cases"))}
      </div>
      ${panel("设计单位与施工单位 <small>Design institutes and contractors (best grade first)</small>", '<div id="parties-table"></div>')}`);
    const data = await get("/dashboard/api/parties");
    const rows = data.parties;
    const named = rows.map((r) => r.name || r.party_id);
    cards("parties-cards", [
      ["设计单位 Design institutes", rows.filter((r) => r.kind === "DESIGN_INSTITUTE").length],
      ["施工单位 Contractors", rows.filter((r) => r.kind === "CONTRACTOR").length],
      ["返工 Reworks", rows.reduce((n, r) => n + r.reworks, 0), "late"],
      ["投诉 Complaints", rows.reduce((n, r) => n + r.complaints, 0), "late"],
      ["评级规则 Rules", data.rules_version],
    ]);
    bars("parties-rates", named, [
      { name: "按时率 On time", data: rows.map((r) => share(r.on_time_rate)) },
      { name: "一次通过率 First pass", data: rows.map((r) => share(r.first_pass_rate)) },
    ], { unit: "%" });
    bars("parties-cases", named, [
      { name: "工单 Cases", data: rows.map((r) => r.cases) },
      { name: "返工 Reworks", data: rows.map((r) => r.reworks) },
      { name: "投诉 Complaints", data: rows.map((r) => r.complaints) },
    ], { unit: "件" });
    table("parties-table", [
      { title: "评级 Grade", cell: (r) => (GRADE_CLASS[r.grade] ? `<span class="badge ${GRADE_CLASS[r.grade]}">${esc(r.grade)}</span>` : `${esc(r.grade)} 未评级 ungraded`) },
      { title: "名称 Name", cell: (r) => `${esc(r.name || "（未登记）unregistered")}${r.suspended ? ' <span class="badge bad">暂停 suspended</span>' : ""}` },
      { title: "类别 Kind", cell: (r) => esc(r.kind ? `${r.kind_label} ${r.kind === "CONTRACTOR" ? "Contractor" : "Design institute"}` : "—") },
      { title: "统一社会信用代码 Party id", cell: (r) => esc(r.party_id) },
      { title: "工单 Cases", num: true, cell: (r) => r.cases },
      { title: "步骤 Steps", num: true, cell: (r) => r.steps },
      { title: "按时率 On time", num: true, cell: (r) => `${pct(r.on_time_rate)} (${r.on_time_steps}/${r.timed_steps})` },
      { title: "一次通过率 First pass", num: true, cell: (r) => `${pct(r.first_pass_rate)} (${r.first_passes}/${r.first_attempts})` },
      { title: "返工 Reworks", num: true, cell: (r) => r.reworks },
      { title: "投诉 Complaints", num: true, cell: (r) => r.complaints },
    ], rows, (r) => `data-party="${esc(r.party_id)}" data-kind="${esc(r.kind || "")}" data-grade="${esc(r.grade)}"`);
  }

  // ---- the loop ---------------------------------------------------------------------------------------

  const PAGES = { overview, department, sla, case: caseView, parties };

  async function poll() {
    let again = true;
    try {
      await PAGES[page]();
      renders += 1;
      document.body.dataset.renders = String(renders);
      $("error").hidden = true;
      $("status").textContent = `更新于 Updated ${new Date().toLocaleTimeString("zh-CN", { hour12: false })}`;
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) {
        askForToken(`令牌无效 Invalid token: ${error.detail}`);
        return;
      }
      const forbidden = error instanceof HttpError && (error.status === 403 || error.status === 404);
      $("error").hidden = false;
      $("error").dataset.status = error instanceof HttpError ? String(error.status) : "";
      $("error").textContent = forbidden
        ? `无权查看或不存在 Not allowed or not found (${error.status}): ${error.detail}`
        : `暂时无法更新 Cannot refresh now: ${error.message}`;
      again = !forbidden;
    }
    if (again) window.setTimeout(poll, POLL_MS);
  }

  async function start() {
    $("signin").onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      window.location.reload();
    };
    $("signout").onclick = () => askForToken("已退出 Signed out");
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === page));
    if (!takeToken()) {
      askForToken();
      return;
    }
    try {
      me = await get("/dashboard/api/me");
    } catch (error) {
      askForToken(`令牌无效 Invalid token: ${error.message}`);
      return;
    }
    labels = me.labels;
    $("who").textContent = `${me.name} · ${me.role}${me.role === "staff" ? " · " + label("Department", me.department) : ""}`;
    if (me.role === "staff") {
      document.querySelector('[data-nav="overview"]').hidden = true;
      document.querySelector('[data-nav="parties"]').hidden = true;
      if (page === "overview") {
        window.location.replace("/dashboard/department");
        return;
      }
    }
    poll();
  }

  start();
})();
