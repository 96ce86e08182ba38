"""The UAT page ``ftkit serve`` shows at ``/``: one self-contained HTML file (inline CSS and JS, no external
scripts, fonts, styles or images; no build step), for current Chromium and Firefox.

What it does, all through the server's authenticated routes:

- takes the tester's token from the link's fragment (``http://host:port/#token=ftk_...``: a fragment is never
  sent to the server nor kept in its logs; the page moves it into ``sessionStorage`` and clears the address bar)
  or from a field, and sends it as ``Authorization: Bearer`` on every call;
- shows which model, training run and export is being tested (``GET /uat/info``) and who the tester is;
- chats with the model, the engagement's system prompt first (as production clients send it), streaming the
  answer (``"stream": true``, server-sent events read from ``fetch``'s body stream);
- under each answer: thumbs up / down, an optional corrected answer and a comment, sent to
  ``POST /uat/feedback`` with the answer's request id.

The page holds no policy and no data of the engagement: the shell is the same for every client, which is why
``GET /`` needs no token.
"""
from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ftkit UAT</title>
<style>
 body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
 header{background:#1d3557;color:#fff;padding:.7rem 1rem}
 header h1{font-size:1.1rem;margin:0}
 #identity{font-size:.85rem;opacity:.9;margin-top:.2rem}
 main{max-width:52rem;margin:0 auto;padding:1rem}
 .card{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:.7rem .9rem;margin:.6rem 0}
 .user{border-left:4px solid #457b9d}.assistant{border-left:4px solid #2a9d8f}
 .who{font-size:.75rem;color:#5b6673;text-transform:uppercase;letter-spacing:.04em}
 .text{white-space:pre-wrap;margin:.3rem 0}
 textarea,input[type=text],input[type=password]{width:100%;box-sizing:border-box;font:inherit;padding:.4rem;
   border:1px solid #b9c0c9;border-radius:4px}
 button{font:inherit;padding:.35rem .8rem;border-radius:4px;border:1px solid #8a96a3;background:#fff;cursor:pointer}
 button.primary{background:#1d3557;color:#fff;border-color:#1d3557}
 button[aria-pressed=true]{background:#e9f5f3;border-color:#2a9d8f;font-weight:600}
 .feedback{margin-top:.5rem;border-top:1px dashed #d9dde3;padding-top:.5rem}
 .feedback label{font-size:.8rem;color:#5b6673;display:block;margin-top:.35rem}
 .row{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
 .status{font-size:.8rem;color:#5b6673}.error{color:#b00020}
 #login{max-width:30rem}
</style></head>
<body>
<header><h1>User acceptance test</h1><div id="identity">Not signed in</div></header>
<main>
 <section id="login" class="card" hidden>
  <p>Paste the access token the consultant gave you.</p>
  <div class="row"><input id="token" type="password" autocomplete="off" aria-label="access token">
  <button id="save-token" class="primary">Start</button></div>
  <p id="login-status" class="status"></p>
 </section>
 <section id="chat" hidden>
  <div id="log" aria-live="polite"></div>
  <div class="card">
   <textarea id="input" rows="4" aria-label="your message" placeholder="Write a message as a real user would"></textarea>
   <div class="row" style="margin-top:.4rem"><button id="send" class="primary">Send</button>
   <button id="new-chat">New conversation</button><span id="chat-status" class="status"></span></div>
  </div>
 </section>
</main>
<script>
"use strict";
const state = {token: "", info: null, messages: []};
const $ = (id) => document.getElementById(id);

function takeToken() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("ftkit-uat-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);  // the token leaves the address bar and history
  }
  return sessionStorage.getItem("ftkit-uat-token") || "";
}

async function api(path, body) {
  const init = {headers: {"Authorization": "Bearer " + state.token}};
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  return response;
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch (e) { return "HTTP " + response.status; }
}

async function signIn() {
  state.token = takeToken();
  if (!state.token) { $("login").hidden = false; return; }
  const response = await api("/uat/info");
  if (!response.ok) {
    sessionStorage.removeItem("ftkit-uat-token");
    $("login").hidden = false;
    $("login-status").textContent = await errorText(response);
    $("login-status").className = "status error";
    return;
  }
  state.info = await response.json();
  const i = state.info;
  const parts = ["model " + i.model];
  if (i.training_run) parts.push("training run " + i.training_run);
  if (i.export) parts.push("export " + i.export);
  if (i.base_model) parts.push("base " + i.base_model);
  $("identity").textContent = parts.join(" \u00b7 ") + " \u2014 tester: " + i.tester;
  $("login").hidden = true;
  $("chat").hidden = false;
  newChat();
}

function newChat() {
  state.messages = state.info && state.info.system_prompt ?
    [{role: "system", content: state.info.system_prompt}] : [];
  $("log").textContent = "";
  $("chat-status").textContent = "";
}

function card(role, text) {
  const box = document.createElement("div");
  box.className = "card " + role;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = role === "user" ? "you" : "model";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  box.append(who, body);
  $("log").append(box);
  return box;
}

async function readStream(response, onDelta) {
  // Server-sent events from fetch's body: "data: {...}\n\n" blocks, ending with "data: [DONE]".
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", id = "", finish = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return {id, finish};
        const chunk = JSON.parse(data);
        id = chunk.id || id;
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) onDelta(choice.delta.content);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  }
  return {id, finish};
}

async function send() {
  const text = $("input").value.trim();
  if (!text) return;
  $("input").value = "";
  $("send").disabled = true;
  card("user", text);
  state.messages.push({role: "user", content: text});
  const box = card("assistant", "");
  const body = box.querySelector(".text");
  $("chat-status").textContent = "the model is answering\u2026";
  try {
    const response = await api("/v1/chat/completions",
      {model: state.info.model, messages: state.messages, stream: true});
    if (!response.ok) {
      body.textContent = await errorText(response);
      body.classList.add("error");
      state.messages.pop();
      return;
    }
    let answer = "";
    const result = await readStream(response, (delta) => { answer += delta; body.textContent = answer; });
    state.messages.push({role: "assistant", content: answer});
    box.dataset.requestId = result.id;
    box.dataset.finishReason = result.finish;
    box.append(feedbackForm(result.id, answer));
  } catch (err) {
    body.textContent = "The connection failed: " + err;
    body.classList.add("error");
  } finally {
    $("send").disabled = false;
    $("chat-status").textContent = "";
  }
}

function feedbackForm(requestId, answer) {
  const form = document.createElement("div");
  form.className = "feedback";
  let rating = "";
  const up = button("\u2713 Good answer", "thumb-up");
  const down = button("\u2717 Wrong or poor", "thumb-down");
  for (const [b, value] of [[up, "up"], [down, "down"]]) {
    b.setAttribute("aria-pressed", "false");
    b.onclick = () => {
      rating = value;
      up.setAttribute("aria-pressed", String(value === "up"));
      down.setAttribute("aria-pressed", String(value === "down"));
      fix.hidden = value !== "down";
    };
  }
  const fix = document.createElement("div");
  fix.hidden = true;
  fix.append(label("The right answer (optional): what should the model have said?"));
  const correction = document.createElement("textarea");
  correction.className = "correction";
  correction.rows = 3;
  correction.value = answer;
  fix.append(correction);
  const comment = document.createElement("input");
  comment.type = "text";
  comment.className = "comment";
  const submit = button("Send feedback", "send-feedback");
  const status = document.createElement("span");
  status.className = "status feedback-status";
  submit.onclick = async () => {
    if (!rating) { status.textContent = "choose thumbs up or down first"; return; }
    const fixed = rating === "down" && correction.value.trim() !== answer.trim() ? correction.value : "";
    const response = await api("/uat/feedback",
      {request_id: requestId, rating: rating, correction: fixed, comment: comment.value});
    status.textContent = response.ok ? "feedback saved, thank you" : await errorText(response);
    status.classList.toggle("error", !response.ok);
  };
  const row = document.createElement("div");
  row.className = "row";
  row.append(up, down);
  form.append(row, fix, label("Comment (optional)"), comment);
  const end = document.createElement("div");
  end.className = "row";
  end.style.marginTop = ".4rem";
  end.append(submit, status);
  form.append(end);
  return form;
}

function button(text, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = text;
  return b;
}

function label(text) {
  const l = document.createElement("label");
  l.textContent = text;
  return l;
}

$("save-token").onclick = () => {
  sessionStorage.setItem("ftkit-uat-token", $("token").value.trim());
  signIn();
};
$("send").onclick = send;
$("new-chat").onclick = newChat;
$("input").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(); });
signIn();
</script>
</body></html>
"""


def page_html() -> str:
    """The page, the same bytes for every engagement (identity and system prompt come from /uat/info)."""
    return PAGE
