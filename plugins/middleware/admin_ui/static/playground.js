// The bridge playground: posts the message (with the session's CSRF token in a header) and
// appends the streamed answer (OpenAI-style SSE chunks) as it arrives.
"use strict";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }
}

async function run(form) {
  const status = document.getElementById("pg-status");
  const answer = document.getElementById("pg-answer");
  answer.textContent = "";
  let variables;
  try {
    variables = JSON.parse(form.elements.variables.value || "{}");
  } catch (error) {
    status.textContent = "Variables: not valid JSON.";
    return;
  }
  const version = form.elements.version.value;
  status.textContent = "Waiting for the first token…";
  const response = await fetch(form.dataset.url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
    body: JSON.stringify({ user: form.elements.user.value, variables, version: version === "" ? null : Number(version) }),
  });
  if (!response.ok) {
    const text = await response.text();
    const doc = new DOMParser().parseFromString(text, "text/html");
    const message = doc.querySelector(".error");
    status.textContent = `Refused (${response.status}): ${message ? message.textContent : text.slice(0, 300)}`;
    return;
  }
  status.textContent = "Streaming…";
  for await (const data of sseData(response)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data);
    if (chunk.error) {
      status.textContent = `Error: ${chunk.error.message}`;
      return;
    }
    const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
    if (delta && delta.content) answer.textContent += delta.content;
  }
  status.textContent = "Done.";
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form).catch((error) => {
      document.getElementById("pg-status").textContent = `Failed: ${error.message}`;
    });
  });
});
