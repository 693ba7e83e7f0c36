// The console's only script: copy buttons (the email signature's as rich text), the live card
// preview, and keeping the screen on while a code is shown in person. Every page works
// without it (the copy target is selectable text; the preview is drawn by the server; the
// screen may dim).
"use strict";

document.querySelectorAll("[data-copy]").forEach(function (button) {
  var target = document.getElementById(button.getAttribute("data-copy"));
  if (!target || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = target.value !== undefined ? target.value : target.textContent;
    navigator.clipboard.writeText(text.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
});

// The email signature's "Copy signature": the HTML as rich text (and the plain text beside it),
// so that it pastes formatted into a mail program's signature box. Where the browser cannot
// (no ClipboardItem, or refused), the HTML source is selected and the status says how else.
document.querySelectorAll("[data-copy-rich]").forEach(function (button) {
  var html = document.getElementById(button.getAttribute("data-copy-rich"));
  var text = document.getElementById(button.getAttribute("data-copy-plain"));
  var status = document.getElementById(button.getAttribute("data-copy-status"));
  if (!html || !text) return;
  button.hidden = false;
  function say(message) { if (status) status.textContent = message; }
  function fallback() {
    html.focus();
    html.select();
    say("Your browser cannot copy formatted text from here. Open it on its own page, select all and copy; or copy the HTML below.");
  }
  button.addEventListener("click", function () {
    if (!navigator.clipboard || !navigator.clipboard.write || !window.ClipboardItem) { fallback(); return; }
    var item = new ClipboardItem({
      "text/html": new Blob([html.value], { type: "text/html" }),
      "text/plain": new Blob([text.value], { type: "text/plain" }),
    });
    navigator.clipboard.write([item]).then(function () {
      say("Copied. Paste it into your mail program's signature settings.");
    }, fallback);
  });
});

document.querySelectorAll("form[data-preview]").forEach(function (form) {
  var preview = document.getElementById(form.getAttribute("data-preview"));
  if (!preview) return;
  function value(name) {
    var input = form.elements[name];
    return input ? input.value.trim() : "";
  }
  function show(name, text) {
    preview.querySelectorAll("[data-show='" + name + "']").forEach(function (el) {
      el.textContent = text;
      var item = el.closest("[data-optional]");
      if (item) item.hidden = text === "";
    });
  }
  function update() {
    show("fullName", value("fullName") || "Your name");
    show("role", [value("title"), value("department"), value("organization")].filter(Boolean).join(" · "));
    show("pronouns", value("pronouns"));
    show("headline", value("headline"));
    show("email", value("email"));
    show("phone", value("phone"));
    show("website", value("website"));
  }
  form.addEventListener("input", update);
});

// "Show it in person": keep the phone's screen on while the code is held up (where the
// browser offers a wake lock; it is released when the page is hidden, so ask again on return).
if (document.querySelector("[data-wake-lock]") && navigator.wakeLock) {
  var keepAwake = function () { navigator.wakeLock.request("screen").catch(function () {}); };
  keepAwake();
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") keepAwake();
  });
}

// The download panel's preview: the code as the form's choices would draw it (at most
// 256 px), redrawn by the server as they change. Without the script it shows the defaults.
document.querySelectorAll("form[data-qr-preview]").forEach(function (form) {
  var image = document.getElementById(form.getAttribute("data-qr-preview"));
  if (!image) return;
  var timer = null;
  function update() {
    var params = new URLSearchParams(new FormData(form));
    params.set("format", "png");
    params.set("size", String(Math.min(256, Number(params.get("size")) || 256)));
    clearTimeout(timer);
    timer = setTimeout(function () { image.src = form.getAttribute("action").split("#")[0] + "?" + params.toString(); }, 250);
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
});

// Live counts (SPEC §9): on a card's page and its stats, the element marked data-live-card
// follows the console's event stream (/app/events/stream, the session cookie, as
// EventSource sends no headers) from the event the page was drawn after, and when a
// card.scanned or card.updated event about this card arrives it asks data-live-counts for
// the numbers the server would draw now and shows them in its [data-live-count] elements.
// Without the script the numbers are as drawn.
document.querySelectorAll("[data-live-card]").forEach(function (box) {
  if (!window.EventSource || !window.fetch) return;
  var cardId = box.getAttribute("data-live-card");
  var countsUrl = box.getAttribute("data-live-counts");
  var after = box.getAttribute("data-live-after");
  var url = "/app/events/stream?type=card.scanned,card.updated" + (after ? "&after=" + encodeURIComponent(after) : "");
  var source = new EventSource(url);
  var busy = false, again = false;
  function show(counts) {
    Object.keys(counts).forEach(function (kind) {
      box.querySelectorAll("[data-live-count='" + kind + "']").forEach(function (el) {
        var text = Number(counts[kind]).toLocaleString("en-US");
        if (el.textContent.trim() === text) return;
        el.textContent = text;
        el.classList.remove("live-changed");
        void el.offsetWidth;  // restart the glow
        el.classList.add("live-changed");
      });
    });
  }
  function refresh() {
    if (busy) { again = true; return; }  // one request at a time; one more after it if asked meanwhile
    busy = true;
    fetch(countsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (counts) { if (counts) show(counts); })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  function arrived(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    if (event && event.data && event.data.cardId === cardId) refresh();
  }
  source.addEventListener("card.scanned", arrived);
  source.addEventListener("card.updated", arrived);
  source.addEventListener("open", function () { box.setAttribute("data-live", "on"); });  // following the stream
  window.addEventListener("pagehide", function () { source.close(); });
});
