/* sspnet review report: triage of the listed detections. Plain JavaScript, no libraries.
 *
 * Keys: j / k next / previous entry, c person (confirm), x not a person (reject), u undecided.
 * Pressing c or x again on an entry with that decision makes it undecided. Decisions are kept in
 * localStorage under "sspnet-report:<report id>", keyed by image and box, so they survive a
 * reload and a report rebuilt for the same frames; "Export decisions (CSV)" downloads
 * image,x1,y1,x2,y2,lon,lat,score,decision for every listed entry.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("report-config").textContent);
  var list = document.getElementById("detections");
  if (!list) {
    return; // nothing to review
  }
  var entries = Array.prototype.slice.call(list.querySelectorAll("li.det"));
  var storeKey = "sspnet-report:" + config.id;
  var storageWorks = true;
  var decisions = load();
  var current = -1;
  var filter = "all";

  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(storeKey) || "{}");
      return saved && typeof saved === "object" ? saved : {};
    } catch (e) {
      storageWorks = false;
      return {};
    }
  }

  function save() {
    try {
      window.localStorage.setItem(storeKey, JSON.stringify(decisions));
    } catch (e) {
      storageWorks = false;
    }
    document.getElementById("storage-note").hidden = storageWorks;
  }

  function decisionOf(el) {
    return decisions[el.dataset.key] || "undecided";
  }

  function visible(el) {
    return filter === "all" || decisionOf(el) === filter;
  }

  function paint(el) {
    el.dataset.decision = decisionOf(el);
    el.classList.toggle("hidden", !visible(el));
  }

  function updateCounts() {
    var yes = 0, no = 0;
    entries.forEach(function (el) {
      var d = decisionOf(el);
      if (d === "confirmed") { yes += 1; } else if (d === "rejected") { no += 1; }
    });
    document.getElementById("counts").textContent =
      yes + " person" + (yes === 1 ? "" : "s") + ", " + no + " not, " +
      (entries.length - yes - no) + " undecided of " + entries.length;
  }

  function select(index) {
    if (index < 0 || index >= entries.length) {
      return;
    }
    if (current >= 0) {
      entries[current].classList.remove("current");
    }
    current = index;
    var el = entries[current];
    el.classList.add("current");
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: "nearest" });
  }

  function step(direction) {
    var i = current < 0 ? (direction > 0 ? -1 : entries.length) : current;
    for (i += direction; i >= 0 && i < entries.length; i += direction) {
      if (visible(entries[i])) {
        select(i);
        return;
      }
    }
  }

  function decide(el, value) {
    var key = el.dataset.key;
    if (value === "undecided" || decisions[key] === value) {
      delete decisions[key];
    } else {
      decisions[key] = value;
    }
    save();
    paint(el);
    updateCounts();
  }

  function csvCell(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function csvText() {
    var lines = ["image,x1,y1,x2,y2,lon,lat,score,decision"];
    entries.forEach(function (el) {
      var cells = [el.dataset.image].concat(el.dataset.box.split(","));
      cells.push(el.dataset.lon, el.dataset.lat, el.dataset.score, decisionOf(el));
      lines.push(cells.map(csvCell).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  function xmlText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  // GPX 1.1 waypoints of the detections confirmed as persons that have a map position: the
  // triage decision straight to a handheld (positions are the results' box-centre ground points)
  function gpxText() {
    // the GPX namespace is a name, never fetched (the page loads nothing from the network)
    var ns = "http:" + "//www.topografix.com/GPX/1/1";
    var lines = ['<?xml version="1.0" encoding="UTF-8"?>',
      '<gpx xmlns="' + ns + '" version="1.1" creator="sspnet review report">',
      "  <metadata><name>persons confirmed in the sspnet review</name></metadata>"];
    entries.forEach(function (el) {
      if (decisionOf(el) !== "confirmed" || el.dataset.lon === "" || el.dataset.lat === "") {
        return;
      }
      var box = el.dataset.box.split(",");
      lines.push('  <wpt lat="' + el.dataset.lat + '" lon="' + el.dataset.lon + '">');
      lines.push("    <name>" + xmlText("#" + el.id.slice(1) + " " + Number(el.dataset.score).toFixed(2)) + "</name>");
      lines.push("    <desc>" + xmlText(el.dataset.image + "; pixel box [" + box.join(", ") + "]; confirmed in review") + "</desc>");
      lines.push("    <type>person</type>");
      lines.push("  </wpt>");
    });
    lines.push("</gpx>");
    return lines.join("\n") + "\n";
  }

  function download(text, type, name) {
    var blob = new Blob([text], { type: type });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
  }

  function exportCsv() {
    // the byte-order mark lets spreadsheet programs read non-ASCII image names as UTF-8
    download("\ufeff" + csvText(), "text/csv;charset=utf-8", config.csv);
  }

  function exportGpx() {
    download(gpxText(), "application/gpx+xml", config.gpx);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      return;
    }
    var key = event.key;
    if (key === "j" || key === "k") {
      step(key === "j" ? 1 : -1);
    } else if (key === "c" || key === "x" || key === "u") {
      if (current < 0) {
        step(1);
      }
      if (current >= 0) {
        decide(entries[current], key === "c" ? "confirmed" : key === "x" ? "rejected" : "undecided");
      }
    } else {
      return;
    }
    event.preventDefault();
  });

  list.addEventListener("click", function (event) {
    var el = event.target.closest("li.det");
    if (!el) {
      return;
    }
    select(entries.indexOf(el));
    var button = event.target.closest("button[data-set]");
    if (button) {
      decide(el, button.dataset.set);
    }
  });

  document.getElementById("filter").addEventListener("change", function (event) {
    filter = event.target.value;
    entries.forEach(paint);
    event.target.blur(); // give the keys back to the list
  });

  document.getElementById("export").addEventListener("click", exportCsv);
  document.getElementById("export-gpx").addEventListener("click", exportGpx);

  entries.forEach(paint);
  updateCounts();
  save();

  // for scripts and tests driving the page
  window.sspnetReport = { csv: csvText, gpx: gpxText, decisions: function () { return JSON.parse(JSON.stringify(decisions)); } };
})();
