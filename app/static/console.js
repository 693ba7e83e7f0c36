// The console's only script: copy buttons, the live card preview, and keeping the screen on
// while a code is shown in person. Every page works without it (the copy target is
// selectable text; the preview is drawn by the server; the screen may dim).
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
