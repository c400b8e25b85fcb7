// rankstack workbench: sort tables in place, auto-submit pickers, expand texts. No dependencies.
"use strict";
(function () {
  function sortTable(table, th) {
    var key = th.dataset.key;
    var current = th.getAttribute("aria-sort");
    var dir = current === "ascending" ? -1 : 1;   // first click ascending, next click descending
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (x, y) {
      var a = parseFloat(x.dataset[key]), b = parseFloat(y.dataset[key]);
      if (a !== b) { return dir * (a - b); }
      return parseFloat(x.dataset.qid) - parseFloat(y.dataset.qid);   // ties: query order
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("th[data-key]").forEach(function (h) {
      var arrow = h.querySelector(".arrow");
      if (h === th) {
        h.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        if (arrow) { arrow.textContent = dir === 1 ? "\u25b2" : "\u25bc"; }
      } else {
        h.setAttribute("aria-sort", "none");
        if (arrow) { arrow.textContent = ""; }
      }
    });
    // keep the picker's sort in step, so "Show" keeps the order the reader chose
    var hidden = document.querySelector("#pick input[name=sort]");
    if (hidden) { hidden.value = (dir === 1 ? "" : "-") + key; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable th[data-key]").forEach(function (th) {
      var link = th.querySelector("a");
      (link || th).addEventListener("click", function (ev) {
        ev.preventDefault();
        sortTable(th.closest("table"), th);
      });
    });
    document.querySelectorAll("form.pick select").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    var expand = document.getElementById("expand-all");
    if (expand) {
      expand.addEventListener("click", function () {
        var all = document.querySelectorAll("li.doc details");
        var open = Array.prototype.some.call(all, function (d) { return !d.open; });
        all.forEach(function (d) { d.open = open; });
        expand.textContent = open ? "Collapse all texts" : "Expand all texts";
      });
    }
  });
})();
