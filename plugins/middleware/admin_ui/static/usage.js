// The usage explorer's chart (Chart.js, vendored): the series the server embedded as JSON, the
// same numbers GET /api/v1/analytics/usage answers for these parameters.
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("usage-data");
  const canvas = document.getElementById("usage-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const text = getComputedStyle(document.body).color;
  Chart.defaults.color = text;
  new Chart(canvas, {
    type: data.kind,
    data: {
      labels: data.labels,
      datasets: data.datasets.map((set, index) => ({
        label: set.label,
        data: set.data,
        borderColor: PALETTE[index % PALETTE.length],
        backgroundColor: PALETTE[index % PALETTE.length],
        tension: 0.2,
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, title: { display: true, text: data.metric } } },
    },
  });
});
