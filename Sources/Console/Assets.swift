/// The stylesheet and the script, compiled into the binary: the pages load nothing from another host.
enum Assets {
    /// The stylesheet with the primary colour filled in (`ConsoleConfig.isHexColor` checked it, so it
    /// cannot break out of the declaration). Bar widths are classes, not `style=` attributes, because the
    /// Content-Security-Policy admits no inline style.
    static func stylesheet(primary: String) -> String {
        var widths = ""
        for p in 0 ... 100 { widths += ".w\(p){width:\(p)%}" }
        return """
            :root{--primary:\(primary);--orange:#f29900;--red:#d93025;--ink:#202124;--muted:#5f6368;--line:#dadce0}
            *{box-sizing:border-box}
            body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f8f9fa}
            header.top{display:flex;align-items:center;gap:12px;padding:10px 24px;background:#fff;border-bottom:1px solid var(--line)}
            header.top img{height:32px}
            header.top .brand{font-weight:600;font-size:18px;flex:1}
            main{max-width:1100px;margin:24px auto;padding:0 24px}
            h1{font-size:22px;margin:0 0 16px}
            .btn,button{font:inherit;border:1px solid var(--primary);background:var(--primary);color:#fff;border-radius:6px;padding:6px 14px;cursor:pointer;text-decoration:none;display:inline-block}
            .btn.plain,button.plain{background:#fff;color:var(--primary)}
            button.danger{background:var(--red);border-color:var(--red)}
            .toolbar{display:flex;gap:12px;align-items:center;margin-bottom:16px}
            .toolbar form{display:flex;gap:8px;flex:1}
            .toolbar input{flex:1}
            input{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px}
            input[aria-invalid=true]{border-color:var(--red)}
            table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line)}
            th,td{text-align:left;padding:10px 12px;border-bottom:1px solid var(--line);vertical-align:middle}
            th{font-weight:600;color:var(--muted);font-size:13px}
            .status-active{color:#188038}.status-disabled{color:var(--muted)}
            .meter-text{font-variant-numeric:tabular-nums;font-size:13px}
            .bar{height:8px;background:#e8eaed;border-radius:4px;overflow:hidden;min-width:160px;margin-top:4px}
            .fill{height:100%;background:var(--primary)}
            [data-color=orange] .fill{background:var(--orange)}
            [data-color=red] .fill{background:var(--red)}
            \(widths)
            td.actions{white-space:nowrap;text-align:right;position:relative}
            .recharge{visibility:hidden}
            tr.client:hover .recharge,tr.client:focus-within .recharge{visibility:visible}
            details.menu{display:inline-block;position:relative}
            details.menu summary{list-style:none;cursor:pointer;padding:4px 10px;border-radius:6px;font-size:18px}
            details.menu summary::-webkit-details-marker{display:none}
            details.menu[open] summary{background:#e8eaed}
            details.menu .items{position:absolute;right:0;z-index:2;background:#fff;border:1px solid var(--line);border-radius:6px;min-width:120px;box-shadow:0 2px 6px rgba(0,0,0,.15)}
            details.menu .items a,details.menu .items button{display:block;width:100%;text-align:left;padding:8px 12px;background:#fff;color:var(--ink);border:0;border-radius:0;text-decoration:none}
            details.menu .items a:hover,details.menu .items button:hover{background:#f1f3f4}
            .pager{display:flex;gap:12px;align-items:center;margin-top:12px;color:var(--muted)}
            form.fields{display:grid;grid-template-columns:1fr 1fr;gap:14px 24px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:24px}
            form.fields .field{display:flex;flex-direction:column;gap:4px}
            form.fields .wide{grid-column:1/-1}
            label{font-size:13px;font-weight:600}
            .error{color:var(--red);font-size:13px}
            .notice{background:#e6f4ea;border:1px solid #ceead6;padding:8px 12px;border-radius:6px;margin-bottom:12px}
            .alert{background:#fce8e6;border:1px solid #f6aea9;padding:8px 12px;border-radius:6px;margin-bottom:12px}
            ul.conditions{list-style:none;padding:0;margin:4px 0;font-size:13px}
            ul.conditions li::before{content:"✗ ";color:var(--red)}
            ul.conditions li[data-met=true]::before{content:"✓ ";color:#188038}
            ul.conditions li[data-met=true]{color:#188038}
            dialog{border:1px solid var(--line);border-radius:8px;padding:24px;min-width:320px}
            dialog::backdrop{background:rgba(0,0,0,.3)}
            dialog form{display:flex;flex-direction:column;gap:10px}
            .card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:20px;margin-bottom:20px}
            .signin{max-width:380px;margin:60px auto}
            .signin form{display:flex;flex-direction:column;gap:10px}
            .big{font-size:24px}
            """
    }

    /// The pages' only script: the Recharge dialog (a fresh idempotency key per opening), the live
    /// password conditions (the server's policy, asked for as the operator types) and the live meters.
    static let script = #"""
        "use strict";
        (function () {
          function key() {
            var b = new Uint8Array(16);
            crypto.getRandomValues(b);
            return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
          }
          function csrf() {
            var m = document.querySelector('meta[name="csrf"]');
            return m ? m.getAttribute("content") : "";
          }
          // The Recharge dialog: one idempotency key per opening, so a double click recharges once.
          var dialog = document.getElementById("recharge-dialog");
          if (dialog) {
            document.addEventListener("click", function (e) {
              var t = e.target.closest ? e.target.closest("button.recharge") : null;
              if (!t) return;
              var form = dialog.querySelector("form");
              form.setAttribute("action", t.getAttribute("data-action"));
              form.querySelector('input[name="idempotency_key"]').value = key();
              dialog.querySelector(".who").textContent = t.getAttribute("data-username");
              form.querySelector('input[name="credits"]').value = "";
              dialog.showModal();
              form.querySelector('input[name="credits"]').focus();
            });
            var cancel = dialog.querySelector("button.cancel");
            if (cancel) cancel.addEventListener("click", function () { dialog.close(); });
          }
          // Live password conditions: the server checks them with the same rules it applies on Create.
          var list = document.querySelector("ul.conditions");
          if (list) {
            var pw = document.getElementById("password"), cf = document.getElementById("password_confirmation");
            var seq = 0;
            var check = function () {
              var mine = ++seq;
              var body = new URLSearchParams();
              body.set("password", pw.value);
              body.set("password_confirmation", cf.value);
              fetch(list.getAttribute("data-check"), {method: "POST", headers: {"X-CSRF-Token": csrf()}, body: body,
                                                      credentials: "same-origin"})
                .then(function (r) { return r.json(); })
                .then(function (j) {
                  if (mine !== seq) return;
                  j.conditions.forEach(function (c) {
                    var li = list.querySelector('li[data-condition="' + c.id + '"]');
                    if (li) li.setAttribute("data-met", c.met ? "true" : "false");
                  });
                })
                .catch(function () {});
            };
            pw.addEventListener("input", check);
            cf.addEventListener("input", check);
          }
          // Live meters: every second, the figures of the meters on the page.
          var source = document.body.getAttribute("data-meters");
          if (source) {
            var apply = function (m) {
              var el = document.querySelector('[data-meter-for="' + CSS.escape(m.username) + '"]');
              if (!el) return;
              var bar = el.querySelector('[role="meter"]');
              var fill = bar.querySelector(".fill");
              el.querySelector(".meter-text").textContent = m.available + " | " + m.used + " | " + m.assigned;
              bar.setAttribute("aria-valuenow", String(m.bar));
              bar.setAttribute("aria-valuetext", m.available + " | " + m.used + " | " + m.assigned);
              bar.setAttribute("data-level", m.level);
              bar.setAttribute("data-color", m.color);
              fill.className = "fill w" + m.bar;
              var st = document.querySelector('[data-status-for="' + CSS.escape(m.username) + '"]');
              if (st) {
                st.textContent = m.status === "active" ? "Active" : "Disabled";
                st.className = "status-" + m.status;
              }
            };
            var poll = function () {
              fetch(source + window.location.search, {credentials: "same-origin", cache: "no-store"})
                .then(function (r) { return r.ok ? r.json() : null; })
                .then(function (j) { if (j) j.meters.forEach(apply); })
                .catch(function () {})
                .then(function () { setTimeout(poll, 1000); });
            };
            setTimeout(poll, 1000);
          }
        })();
        """#
}
