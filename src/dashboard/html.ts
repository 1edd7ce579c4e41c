// HTML helpers for the dashboard. Everything that comes from a run (model output above all) goes
// through `esc`, so a completion containing markup is shown as text, never parsed by the browser.

export const esc = (v: unknown): string =>
  String(v ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A query-string value for a link; the result is still passed through esc() where it lands in HTML. */
export const q = (params: Record<string, string | number | undefined>): string =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");

export const fmtNum = (x: number | null | undefined, digits = 3): string => {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : x.toFixed(digits);
};

export const fmtSeconds = (s: number): string =>
  s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(2)} h`;

const STYLE = `
:root{--fg:#1d2330;--mut:#667085;--bd:#e3e6ec;--bg:#f6f7f9;--ac:#2f6fdf;--ok:#1f9d55;--bad:#d64545;--warn:#c98a00}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfd8ea;text-decoration:none}header a:hover{color:#fff}header .brand{font-weight:700;color:#fff}
main{padding:20px 24px;max-width:1280px;margin:0 auto}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:12px 0 6px}
.card{background:#fff;border:1px solid var(--bd);border-radius:8px;padding:14px 16px;margin:0 0 14px}
.mut{color:var(--mut)}.mono,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f7;border-radius:6px;padding:8px 10px;margin:4px 0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--bd);vertical-align:top}
th{font-weight:600;color:var(--mut);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
a{color:var(--ac)}.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#eef1f6}
.v-correct,.v-AC,.v-kept{background:#e3f5ea;color:var(--ok)}.v-incorrect,.v-WA,.v-RE,.v-TLE,.v-MLE,.v-OLE,.v-dropped{background:#fbe7e7;color:var(--bad)}
.v-no_answer,.v-no_code,.v-timeout,.v-error{background:#fdf3dc;color:var(--warn)}
.live{background:#e3f5ea;color:var(--ok)}.idle{background:#eef1f6;color:var(--mut)}
.bar{height:8px;background:#eef1f6;border-radius:4px;overflow:hidden;min-width:120px}.bar>i{display:block;height:100%;background:var(--ac)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px}
.chart{background:#fff;border:1px solid var(--bd);border-radius:8px;padding:10px 12px}
.chart h3{margin:0 0 4px}.legend{font-size:12px;color:var(--mut)}.legend b{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px}
.completion{border-left:3px solid var(--bd);padding-left:10px;margin:10px 0}
form.inline{display:flex;gap:10px;align-items:end;flex-wrap:wrap}select,button{font:inherit;padding:4px 8px}
td.mono{word-break:break-all}td.nowrap{white-space:nowrap}.err{background:#fbe7e7;color:var(--bad);padding:8px 12px;border-radius:6px}
`;

/** Polls the page's live JSON endpoint and swaps in the server-rendered fragments when they change. */
const LIVE_SCRIPT = `
(function(){var el=document.getElementById('live');if(!el)return;var src=el.getAttribute('data-src');var ver=el.getAttribute('data-version');
var st=document.getElementById('live-state');
function tick(){fetch(src+(src.indexOf('?')<0?'?':'&')+'since='+encodeURIComponent(ver),{cache:'no-store'}).then(function(r){return r.json()}).then(function(d){
if(st)st.textContent='updated '+new Date().toLocaleTimeString();
if(d.version!==ver){ver=d.version;el.setAttribute('data-version',ver);var open=[].map.call(el.querySelectorAll('details'),function(x){return x.open});el.innerHTML=d.html;
[].forEach.call(el.querySelectorAll('details'),function(x,i){if(open[i])x.open=true});}}).catch(function(){if(st)st.textContent='server not reachable; retrying'})
.then(function(){setTimeout(tick,${1000})});}
setTimeout(tick,1000);})();
`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} — promptcot dashboard</title><style>${STYLE}</style></head><body>
<header><a class="brand" href="/">promptcot dashboard</a><a href="/">runs</a><a href="/compare">compare</a><span class="mut" id="live-state" style="margin-left:auto;font-size:12px"></span></header>
<main>${body}</main><script>${LIVE_SCRIPT}</script></body></html>`;
}

/** The region the client script refreshes: `src` answers {version, html}. */
export const liveRegion = (src: string, version: string, html: string): string =>
  `<div id="live" data-src="${esc(src)}" data-version="${esc(version)}">${html}</div>`;

export const pill = (text: string, cls = text): string => `<span class="pill v-${esc(cls)}">${esc(text)}</span>`;
