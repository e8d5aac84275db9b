// The live view (issue 35, src/live/view.rs): shows the snapshot the page came with, then
// polls /live.json each second and hands the new rows to report.js's charts. Every text
// from the scenario reaches the page through textContent, never as HTML. When the run
// ends its server stops: the page says so and stops polling.
(function () {
  "use strict";
  var EVERY_MS = 1000;
  var state = { polls: 0, rows: 0, ended: false, phase: "" };
  window.cqrsBenchLive = state;

  function show(snapshot) {
    state.rows = snapshot.rows;
    state.phase = snapshot.phase;
    document.getElementById("live-progress").textContent = snapshot.progress;
    var body = document.querySelector("#live-slo tbody");
    var rows = snapshot.slo.map(function (rule) {
      var tr = document.createElement("tr");
      tr.className = rule.state;
      [rule.name, rule.threshold, rule.so_far].forEach(function (text) {
        var td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  function poll() {
    fetch("/live.json", { cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.json();
      })
      .then(function (snapshot) {
        state.polls += 1;
        show(snapshot);
        window.cqrsBenchCharts.update(snapshot.charts);
        setTimeout(poll, EVERY_MS);
      })
      .catch(function () {
        // The server stops with the run: not an error of the page.
        state.ended = true;
        document.getElementById("live-status").textContent =
          "the run has ended (its server stopped): the figures above are its last seconds; report.html has them all";
      });
  }

  show(JSON.parse(document.getElementById("live-first").textContent));
  setTimeout(poll, EVERY_MS);
})();
