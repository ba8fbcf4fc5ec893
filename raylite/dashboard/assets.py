"""The dashboard's stylesheet and script, served from /static/ (no CDN: clusters often
have no internet, and the Content-Security-Policy allows only this site)."""

APP_CSS = """\
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#0f172a;background:#fff}
header{display:flex;align-items:center;gap:16px;padding:8px 16px;background:#0f172a;color:#fff}
header .brand{font-weight:700;letter-spacing:.5px}
header nav a{color:#cbd5e1;text-decoration:none;margin-right:12px;padding:4px 6px;border-radius:4px}
header nav a.active,header nav a:hover{background:#1e293b;color:#fff}
header form{margin-left:auto}
header button{background:#334155;color:#fff;border:0;padding:4px 10px;border-radius:4px;cursor:pointer}
main{padding:12px 20px;max-width:1400px}
main.login{max-width:420px;margin:80px auto}
main.login input{width:100%;padding:8px;margin:8px 0;box-sizing:border-box}
main.login button{padding:8px 16px}
h1{font-size:20px;margin:8px 0 12px}
h2{font-size:15px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0 12px;min-width:300px}
th,td{text-align:left;padding:3px 10px 3px 0;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{color:#475569;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#0f172a;color:#e2e8f0;padding:10px;overflow:auto;max-height:70vh;font-size:12px}
pre.traceback{background:#450a0a;color:#fee2e2}
.muted{color:#64748b}.err{color:#b91c1c}.error{color:#b91c1c;font-weight:600}
.note{background:#fef9c3;padding:6px 10px;border-radius:4px}
.empty{color:#64748b;font-style:italic}
.tag{background:#e0e7ff;color:#3730a3;border-radius:3px;padding:0 5px;font-size:12px}
.state{border-radius:3px;padding:0 5px;font-size:12px;background:#e2e8f0}
.s-alive,.s-finished,.s-running{background:#dcfce7;color:#166534}
.s-dead,.s-failed{background:#fee2e2;color:#991b1b}
.s-pending_creation,.s-restarting,.s-pending_args_avail,.s-pending_node_assignment{background:#fef3c7;color:#92400e}
.bar{display:inline-block;width:120px;height:10px;background:#e2e8f0;border-radius:2px;vertical-align:middle}
.bar .fill{display:block;height:10px;background:#2563eb;border-radius:2px}
section.node{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px;margin-bottom:12px}
.cols{display:flex;gap:24px;flex-wrap:wrap}
.filters a{margin-right:6px}.filters a.active{font-weight:700}
.pager a{margin-right:10px}
.summary{font-weight:600}
.w0{width:0%}.w5{width:5%}.w10{width:10%}.w15{width:15%}.w20{width:20%}.w25{width:25%}.w30{width:30%}.w35{width:35%}.w40{width:40%}.w45{width:45%}.w50{width:50%}.w55{width:55%}.w60{width:60%}.w65{width:65%}.w70{width:70%}.w75{width:75%}.w80{width:80%}.w85{width:85%}.w90{width:90%}.w95{width:95%}.w100{width:100%}
"""

APP_JS = """\
// Live pages: re-read this page every few seconds and swap its <main>, unless the
// reader is selecting text. No library, no network beyond this site.
(function () {
  if (!document.body || !document.body.dataset.live) return;
  var busy = false;
  setInterval(function () {
    if (busy || document.hidden) return;
    var sel = window.getSelection && window.getSelection();
    if (sel && String(sel).length) return;
    busy = true;
    fetch(location.href, {credentials: "same-origin", headers: {"X-Refresh": "1"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main"), old = document.querySelector("main");
        if (fresh && old) old.innerHTML = fresh.innerHTML;
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }, 3000);
})();
"""
