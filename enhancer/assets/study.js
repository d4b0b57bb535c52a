// The blind A/B study: one pair at a time, choices kept in localStorage, exported as CSV.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("study-data").textContent);
  const trials = data.trials;
  const storeKey = "enhancer-study:" + data.id;
  const left = document.getElementById("left");
  const right = document.getElementById("right");
  const progress = document.getElementById("progress");
  let answers = {};
  try { answers = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { answers = {}; }
  const order = [];  // trial indices in the order they were answered (for undo)
  for (const k of Object.keys(answers).map(Number).sort((a, b) => a - b)) order.push(k);

  const save = () => localStorage.setItem(storeKey, JSON.stringify(answers));
  const current = () => trials.findIndex((_, i) => !(i in answers));

  const show = () => {
    const i = current();
    const done = i < 0;
    document.getElementById("done").hidden = !done;
    document.getElementById("pair").hidden = done;
    document.querySelector(".same").hidden = done;
    progress.textContent = done ? `${trials.length} of ${trials.length} pairs judged`
                                : `Pair ${Object.keys(answers).length + 1} of ${trials.length}`;
    if (done) { left.removeAttribute("src"); right.removeAttribute("src"); left.load(); right.load(); return; }
    const t = trials[i];
    document.body.dataset.trial = String(i);
    left.src = t.left_video;
    right.src = t.right_video;
    left.currentTime = 0; right.currentTime = 0;
    left.play().catch(() => {}); right.play().catch(() => {});
  };

  const choose = (choice) => {
    const i = current();
    if (i < 0) return;
    answers[i] = choice;
    order.push(i);
    save();
    show();
  };
  const undo = () => {
    const i = order.pop();
    if (i === undefined) return;
    delete answers[i];
    save();
    show();
  };

  // the right side follows the left one: the same time (within 40 ms) and the same play state
  const follow = () => {
    if (left.src && right.src && left.readyState >= 2 && right.readyState >= 2) {
      if (Math.abs(right.currentTime - left.currentTime) > 0.04) right.currentTime = left.currentTime;
      if (right.paused !== left.paused) (left.paused ? right.pause() : right.play().catch(() => {}));
    }
    requestAnimationFrame(follow);
  };

  const field = (v) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const csv = () => {
    const rows = ["clip,left,right,choice"];
    trials.forEach((t, i) => { if (i in answers) rows.push([t.clip, t.left, t.right, answers[i]].map(field).join(",")); });
    return rows.join("\n") + "\n";
  };
  const exportCsv = () => {
    const a = document.createElement("a");
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    a.href = URL.createObjectURL(new Blob([csv()], { type: "text/csv" }));
    a.download = `results-${stamp}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
  };

  const keys = { ArrowLeft: "left", a: "left", A: "left", ArrowRight: "right", d: "right", D: "right",
                 ArrowDown: "same", s: "same", S: "same" };
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key in keys) { e.preventDefault(); choose(keys[e.key]); }
    else if (e.key === "Backspace") { e.preventDefault(); undo(); }
    else if (e.key === " ") { e.preventDefault(); left.paused ? left.play().catch(() => {}) : left.pause(); }
  });
  document.querySelectorAll("button[data-choice]").forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice)));
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("export").addEventListener("click", exportCsv);
  document.getElementById("reset").addEventListener("click", () => {
    if (!confirm("Forget every choice made in this browser for this study?")) return;
    answers = {}; order.length = 0; save(); show();
  });
  window.enhancerStudy = { csv, answers: () => ({ ...answers }), trials };
  show();
  requestAnimationFrame(follow);
})();
