// The report's two interactive views: wipe sliders over stills, and crop clips played in step.
"use strict";
document.querySelectorAll(".wipe").forEach((fig) => {
  const view = fig.querySelector(".wipe-view");
  const range = fig.querySelector("input[type=range]");
  const before = fig.querySelector("img.before");
  const tag = fig.querySelector(".tag.left");
  const set = (pos) => { view.style.setProperty("--pos", pos + "%"); range.value = pos; };
  range.addEventListener("input", () => set(range.value));
  const drag = (e) => {
    if (e.type !== "pointerdown" && !(e.buttons & 1)) return;
    const r = view.getBoundingClientRect();
    set(Math.max(0, Math.min(100, ((e.clientX - r.left) / r.width) * 100)).toFixed(1));
  };
  view.addEventListener("pointerdown", drag);
  view.addEventListener("pointermove", drag);
  fig.querySelectorAll("button[data-against]").forEach((button) => {
    button.addEventListener("click", () => {
      const which = button.dataset.against;
      before.src = fig.dataset[which];
      before.alt = tag.textContent = which;
      fig.querySelectorAll("button[data-against]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    });
  });
});

document.querySelectorAll(".motion").forEach((group) => {
  const videos = Array.from(group.querySelectorAll("video"));
  if (!videos.length) return;
  const lead = videos[0];
  const frame = 1 / parseFloat(group.dataset.fps || "25");
  const play = group.querySelector("button.play");
  const all = (f) => videos.forEach(f);
  const start = () => all((v) => v.play().catch(() => {}));
  const stop = () => all((v) => v.pause());
  // the others follow the first: the same time, within half a frame, and the same play state
  const follow = () => {
    for (const v of videos.slice(1)) {
      if (Math.abs(v.currentTime - lead.currentTime) > frame / 2) v.currentTime = lead.currentTime;
      if (v.paused !== lead.paused) (lead.paused ? v.pause() : v.play().catch(() => {}));
    }
    requestAnimationFrame(follow);
  };
  play.addEventListener("click", () => {
    if (lead.paused) { start(); play.textContent = "pause"; } else { stop(); play.textContent = "play"; }
  });
  group.querySelector("select.rate").addEventListener("change", (e) => all((v) => { v.playbackRate = parseFloat(e.target.value); }));
  group.querySelectorAll("button.step").forEach((b) => b.addEventListener("click", () => {
    stop(); play.textContent = "play";
    const t = Math.max(0, Math.min(lead.duration - frame / 2, lead.currentTime + parseInt(b.dataset.step, 10) * frame));
    all((v) => { v.currentTime = t; });
  }));
  start();
  requestAnimationFrame(follow);
});
