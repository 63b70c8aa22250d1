// modelyard UI: the small script layer. Pages work without it; it adds keyboard
// shortcuts, row navigation in tables, and a confirmation before a rollback.
(function () {
  "use strict";
  var pendingG = false;
  var current = -1;

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function rows() {
    var table = document.querySelector("table[data-rows]");
    return table ? Array.prototype.slice.call(table.tBodies[0].rows).filter(function (r) {
      return r.querySelector("a.row-link");
    }) : [];
  }

  function select(index) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (r, i) { r.classList.toggle("current", i === current); });
    all[current].scrollIntoView({ block: "nearest" });
    all[current].querySelector("a.row-link").focus({ preventScroll: true });
  }

  function go(key) {
    var link = document.querySelector('header.top a[data-shortcut="g ' + key + '"]');
    if (link) { window.location.href = link.href; }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var key = event.key;
    if (pendingG) {
      pendingG = false;
      go(key);
      return;
    }
    if (key === "g") { pendingG = true; window.setTimeout(function () { pendingG = false; }, 1200); return; }
    if (key === "/") {
      var box = document.querySelector("[data-focus-key='/']");
      if (box) { event.preventDefault(); box.focus(); box.select(); }
      return;
    }
    if (key === "?") { var help = document.getElementById("shortcuts"); if (help && !help.open) { help.showModal(); } return; }
    if (key === "j") { select(current + 1); return; }
    if (key === "k") { select(current - 1); return; }
    if (key === "x" && current >= 0) {
      var box2 = rows()[current].querySelector("input[type=checkbox]");
      if (box2) { box2.checked = !box2.checked; }
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-help]")) {
      document.getElementById("shortcuts").showModal();
    }
    if (target.matches && target.matches("button[data-confirm]") && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id === "compare-form" && form.querySelectorAll !== undefined) {
      var picked = document.querySelectorAll("input[form='compare-form']:checked").length;
      if (picked < 2) {
        event.preventDefault();
        window.alert("Tick at least two runs to compare.");
      }
    }
  });
})();
