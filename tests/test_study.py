"""The blind A/B study: the page it makes (driven in headless Chromium with key presses, offline),
the CSV it exports, and the statistics `study score` prints, against values worked out by hand."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from browser import Browser, find_chromium
from conftest import make_clip, run_cli
from enhancer.errors import InputError
from enhancer.reports.preference import (Judgement, bradley_terry, pair_preferences, read_judgements, summary,
                                         wilson)

METHODS = ("general-x2", "lanczos", "bicubic")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Three methods' folders of two tiny clips: FFV1 in MKV and 4:4:4 H.264 (both transcoded for the
    browser) and plain H.264 MP4 (copied)."""
    root = tmp_path_factory.mktemp("study")
    kinds = {"general-x2": dict(vcodec="ffv1", pix_fmt="yuv444p", ext=".mkv"),
             "lanczos": dict(vcodec="libx264", pix_fmt="yuv420p", ext=".mp4", vf="boxblur=1"),
             "bicubic": dict(vcodec="libx264", pix_fmt="yuv444p", ext=".mp4", vf="boxblur=2")}
    for method, kind in kinds.items():
        (root / method).mkdir()
        for clip in ("street", "forest"):
            make_clip(root / method / f"{clip}{kind['ext']}", size="96x64", seconds=0.4, audio=False,
                      vcodec=kind["vcodec"], pix_fmt=kind["pix_fmt"], vf=kind.get("vf"),
                      src="testsrc2" if clip == "street" else "smptebars")
    (root / "lanczos" / "only-here.mp4").write_bytes((root / "lanczos" / "street.mp4").read_bytes())
    r = run_cli("study", "make", *(str(root / m) for m in METHODS), "-o", str(root / "out"), "--seed", "7", "-q")
    assert r.returncode == 0, r.stderr
    assert "6 pairs" in r.stdout and "2 videos transcoded" not in r.stdout and "4 videos transcoded" in r.stdout
    assert "only-here" in r.stdout  # left out, and said so
    return root / "out"


def test_study_folder_holds_every_pair_once_in_a_recorded_order(study):
    from enhancer.media.probe import probe

    design = json.loads((study / "study.json").read_text())
    trials = design["trials"]
    pairs = sorted((t["clip"], *sorted((t["left"], t["right"]))) for t in trials)
    assert pairs == sorted((c, *sorted(p)) for c in ("forest", "street")
                           for p in (METHODS[:2], METHODS[::2], METHODS[1:]))
    assert {t["left"] for t in trials} != {METHODS[0]}  # sides are drawn, not fixed
    for t in trials:
        for side in ("left_video", "right_video"):
            info = probe(str(study / t[side]))
            assert info.codec == "h264" and info.pix_fmt == "yuv420p"
            assert not any(m in t[side] for m in METHODS)  # file names do not give the method away
    page = (study / "index.html").read_text()
    assert "http:" not in page and "https:" not in page and "<script src" not in page


def test_an_unknown_csv_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("clip,a,b\n")
    with pytest.raises(InputError, match="r.csv: does not start with the header clip,left,right,choice"):
        read_judgements([str(bad)])
    bad.write_text("clip,left,right,choice\nx,a,b,maybe\n")
    r = run_cli("study", "score", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "line 2" in r.stderr


def test_statistics_match_hand_computed_values():
    rows = ([Judgement("c", "A", "B", "left")] * 4 + [Judgement("c", "B", "A", "right")] * 3
            + [Judgement("c", "A", "B", "right")] * 2 + [Judgement("c", "B", "A", "same")])
    (p,) = pair_preferences(rows)
    assert (p.first, p.second, p.first_wins, p.second_wins, p.same, p.n) == ("A", "B", 7, 2, 1, 10)
    # (7 + 1/2) / 10 = 0.75; Wilson, z = 1.95996: centre (0.75 + z^2/20) / (1 + z^2/10) = 0.68062,
    # half-width z / (1 + z^2/10) * sqrt(0.75 * 0.25 / 10 + z^2 / 400) = 0.23844
    assert p.rate == 0.75
    assert p.interval == pytest.approx((0.44218, 0.91905), abs=1e-4)
    assert not p.preferred and p.verdict() == "no clear preference between A and B: A 75% [44–92], n=10"
    lo, hi = wilson(0.78 * 96, 96)  # the issue's own example: 78% of 96
    assert (round(100 * lo), round(100 * hi)) == (69, 85)
    strong = pair_preferences([Judgement("c", "x", "y", "left")] * 75 + [Judgement("c", "x", "y", "right")] * 21)
    assert strong[0].verdict() == "x preferred over y: 78% [69–85], n=96"
    # Bradley-Terry: A beats B 2 of 3, B beats C 2 of 3, A beats C 4 of 5 is fitted exactly by
    # strengths 4 : 2 : 1 (3 * 4/6 = 2, 3 * 2/3 = 2, 5 * 4/5 = 4 expected wins)
    games = ([Judgement("c", "A", "B", "left")] * 2 + [Judgement("c", "A", "B", "right")]
             + [Judgement("c", "B", "C", "left")] * 2 + [Judgement("c", "C", "B", "left")]
             + [Judgement("c", "C", "A", "right")] * 4 + [Judgement("c", "A", "C", "right")])
    s = bradley_terry(games)
    assert s == pytest.approx({"A": 4 / 7, "B": 2 / 7, "C": 1 / 7}, abs=1e-6)
    assert "Bradley-Terry" in summary(games) and "57.1" in summary(games)


def _downloaded(folder: Path, pattern: str, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.glob(pattern) if p.stat().st_size]
        if found:
            return found[0]
        time.sleep(0.1)
    raise TimeoutError(f"nothing like {pattern} was downloaded")


@pytest.mark.skipif(not find_chromium(), reason="no Chromium installed (.ci/run installs Debian's chromium)")
def test_study_page_records_key_presses_and_round_trips_to_score(study, tmp_path):
    trials = json.loads((study / "study.json").read_text())["trials"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    keys = {"left": [("ArrowLeft", "ArrowLeft", 37), ("a", "KeyA", 65)],
            "right": [("ArrowRight", "ArrowRight", 39), ("d", "KeyD", 68)],
            "same": [("ArrowDown", "ArrowDown", 40), ("s", "KeyS", 83)]}
    expected = []
    with Browser(tmp_path / "profile", width=1100, height=700, downloads=downloads) as b:
        b.open((study / "index.html").as_uri())
        assert all(u.startswith("file://") for u in b.requested_urls()), b.requested_urls()  # offline
        for k, t in enumerate(trials):
            # both sides load and play, in the recorded order
            shown = b.wait_for("(() => { const l = document.getElementById('left'), r = document.getElementById('right');"
                               " return l.readyState >= 2 && r.readyState >= 2 && !l.paused && !r.paused && "
                               "l.videoWidth > 0 && [l.getAttribute('src'), r.getAttribute('src'), "
                               "document.getElementById('progress').textContent]; })()", 30)
            assert shown == [t["left_video"], t["right_video"], f"Pair {k + 1} of {len(trials)}"]
            if k == 0:
                b.screenshot(tmp_path / "study-pair.png", full_page=False)
            if "general-x2" in (t["left"], t["right"]):  # the rule the "participant" follows
                choice = "left" if t["left"] == "general-x2" else "right"
            else:
                choice = "same"
            if k == 2:  # a slip, taken back
                b.key(*keys["left" if choice != "left" else "right"][0])
                b.key("Backspace", "Backspace", 8)
            b.key(*keys[choice][k % 2])
            expected.append(f"{t['clip']},{t['left']},{t['right']},{choice}")
        assert b.wait_for("!document.getElementById('done').hidden")
        csv_text = b.js("window.enhancerStudy.csv()")
        assert csv_text == "clip,left,right,choice\n" + "\n".join(expected) + "\n"
        b.js("document.getElementById('export').click()")
        exported = _downloaded(downloads, "results-*.csv")
        b.open((study / "index.html").as_uri())  # choices survive a reload (localStorage)
        assert b.js("document.getElementById('progress').textContent") == "6 of 6 pairs judged"
        assert b.js("getComputedStyle(document.getElementById('pair')).display") == "none"
        b.screenshot(tmp_path / "study-done.png")
    assert exported.read_text() == csv_text
    r = run_cli("study", "score", str(downloads / "results-*.csv"))
    assert r.returncode == 0, r.stderr
    # general-x2 won both of its meetings with each: 2/2, Wilson [0.342, 1]; lanczos and bicubic
    # were "the same" twice: 1/2, Wilson [0.095, 0.905]
    assert "no clear preference between general-x2 and bicubic: general-x2 100% [34–100], n=2" in r.stdout
    assert "no clear preference between general-x2 and lanczos: general-x2 100% [34–100], n=2" in r.stdout
    assert "no clear preference between bicubic and lanczos: bicubic 50% [9–91], n=2" in r.stdout
    assert r.stdout.startswith("6 judgements")
