/* Junction chatbot widget: a chat window a site adds with one tag, no dependencies.
 *
 *   <script src="https://gateway.example/chatbot/<slug>/widget.js" data-token="cbt_…"
 *           data-title="Ask us" async></script>
 *
 * The token comes from the site's own server (POST /api/v1/chatbots/<slug>/token with an admin
 * key); it is the only credential the page holds. Answers stream in as they are written.
 * Text is always inserted as text (never as HTML).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var src = new URL(script.src, document.baseURI);
  var match = src.pathname.match(/\/chatbot\/([^/]+)\/widget\.js$/);
  if (!match) { return; }
  var slug = decodeURIComponent(match[1]);
  var api = src.origin + "/api/v1/chatbots/" + encodeURIComponent(slug);
  var token = script.getAttribute("data-token") || "";
  var title = script.getAttribute("data-title") || "Chat";

  function el(tag, attrs, style) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    node.style.cssText = style || "";
    return node;
  }

  var font = "font:14px/1.4 system-ui,sans-serif;";
  var root = el("div", { "data-junction-chat": slug }, "position:fixed;right:16px;bottom:16px;z-index:2147483000;" + font);
  var toggle = el("button", { type: "button", "data-junction": "open" },
    "border:0;border-radius:20px;padding:10px 16px;background:#2b59c3;color:#fff;cursor:pointer;" + font);
  toggle.textContent = title;
  var panel = el("div", { "data-junction": "panel", role: "dialog", "aria-label": title },
    "display:none;width:320px;height:420px;flex-direction:column;background:#fff;border:1px solid #ccd;" +
    "border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.2);overflow:hidden;");
  var head = el("div", {}, "display:flex;justify-content:space-between;align-items:center;padding:8px 12px;background:#2b59c3;color:#fff;");
  var heading = el("strong", {}, "");
  heading.textContent = title;
  var resetButton = el("button", { type: "button", "data-junction": "reset", title: "New conversation" },
    "border:0;background:transparent;color:#fff;cursor:pointer;" + font);
  resetButton.textContent = "New";
  var log = el("div", { "data-junction": "log", "aria-live": "polite" }, "flex:1;overflow-y:auto;padding:8px 12px;");
  var form = el("form", {}, "display:flex;border-top:1px solid #ccd;");
  var input = el("input", { type: "text", "data-junction": "input", placeholder: "Type a message…", "aria-label": "Message" },
    "flex:1;border:0;padding:10px;outline:none;" + font);
  var send = el("button", { type: "submit", "data-junction": "send" }, "border:0;padding:0 14px;background:#eef;cursor:pointer;" + font);
  send.textContent = "Send";

  head.appendChild(heading);
  head.appendChild(resetButton);
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(head);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(toggle);

  function bubble(role, text) {
    var mine = role === "user";
    var node = el("div", { "data-junction-role": role },
      "margin:6px 0;padding:6px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap;word-wrap:break-word;" +
      (mine ? "margin-left:auto;background:#2b59c3;color:#fff;" : "background:#f0f1f5;color:#111;") +
      (role === "error" ? "background:#fde8e8;color:#900;" : ""));
    node.textContent = text;
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function headers() {
    return { "authorization": "Bearer " + token, "content-type": "application/json" };
  }

  function failed(response) {
    return response.json().then(function (body) {
      throw new Error((body && body.error && body.error.message) || ("HTTP " + response.status));
    }, function () { throw new Error("HTTP " + response.status); });
  }

  function readStream(response, into) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { return; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (event) {
          event.split("\n").forEach(function (line) {
            if (line.indexOf("data: ") !== 0) { return; }  // SSE comments: tool activity, keep-alives
            var data = line.slice(6);
            if (data === "[DONE]") { return; }
            var parsed = JSON.parse(data);
            if (parsed.error) { throw new Error(parsed.error.message); }
            var choice = parsed.choices && parsed.choices[0];
            if (choice && choice.delta && choice.delta.content) {
              into.textContent += choice.delta.content;
              log.scrollTop = log.scrollHeight;
            }
          });
        });
        return pump();
      });
    }
    return pump();
  }

  var busy = false;
  function ask(text) {
    if (busy || !text) { return Promise.resolve(); }
    busy = true;
    send.disabled = true;
    bubble("user", text);
    var answer = bubble("assistant", "");
    answer.setAttribute("data-junction-state", "streaming");
    return fetch(api + "/messages", { method: "POST", headers: headers(), body: JSON.stringify({ message: text, stream: true }) })
      .then(function (response) { return response.ok ? readStream(response, answer) : failed(response); })
      .then(function () { answer.setAttribute("data-junction-state", "done"); },
            function (error) { answer.remove(); bubble("error", error.message); })
      .then(function () { busy = false; send.disabled = false; input.focus(); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    input.value = "";
    ask(text);
  });
  toggle.addEventListener("click", function () {
    var open = panel.style.display === "none";
    panel.style.display = open ? "flex" : "none";
    if (open) { input.focus(); }
  });
  resetButton.addEventListener("click", function () {
    fetch(api + "/reset", { method: "POST", headers: headers(), body: "{}" })
      .then(function (response) { if (!response.ok) { return failed(response); } log.textContent = ""; })
      .catch(function (error) { bubble("error", error.message); });
  });

  function mount() { document.body.appendChild(root); }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
