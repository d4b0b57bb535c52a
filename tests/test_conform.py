"""conform: only the frames an edit uses are enhanced, each range carrying its first frame's
timecode, and the relinked edit shows the enhanced version of exactly the frames the original
showed (issue 31). Every edit is built here, over media whose frames say which they are."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

otio = pytest.importorskip("opentimelineio")

from conftest import MAKER, decode_frames, run_cli  # noqa: E402
from enhancer import conform  # noqa: E402
from enhancer.errors import UsageError  # noqa: E402
from enhancer.pipeline.engine import EnhanceOptions  # noqa: E402
from enhancer.restore.loading import load_restorer  # noqa: E402
from enhancer.media.encode import EncodeOptions  # noqa: E402
from enhancer.media.probe import probe  # noqa: E402
from enhancer.batch.status import FileStatus  # noqa: E402

NTSC = 30000 / 1001
FAST = ["--model", "nearest", "--scale", "1", "-q"]


def source(path: Path, timecode: str | None, rate: str = "25", seconds: int = 4, reel: str | None = None) -> Path:
    """Frames that say which they are (the left half's level counts the frame modulo 16, the
    right half's the sixteens), a 1 kHz burst at 1.00-1.04 s in silent PCM audio, a timecode."""
    ident = "geq=lum='if(lt(X,W/2),16+mod(N,16)*13,16+floor(N/16)*13)':cb=128:cr=128"
    argv = [MAKER, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"color=gray:size=64x48:rate={rate}:duration={seconds},format=yuv420p,{ident}",
            "-f", "lavfi", "-i", f"aevalsrc='if(between(t,1,1.04),0.5*sin(2*PI*1000*t),0)':s=48000:d={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-c:a", "pcm_s16le"]
    argv += ["-timecode", timecode] if timecode else []
    argv += ["-metadata:s:v:0", f"reel_name={reel}"] if reel else []
    subprocess.run(argv + [str(path)], check=True)
    return path


def frame_ids(path: Path) -> list[int]:
    """Which source frame each frame of ``path`` is."""
    f = decode_frames(path).astype(float)
    w = f.shape[2]
    level = lambda half: np.round(half.mean(axis=(1, 2, 3)) * 219 / 255 / 13).astype(int)  # noqa: E731
    return [int(v) for v in level(f[:, :, : w // 2 - 2]) + 16 * level(f[:, :, w // 2 + 2:])]


def burst_at(path: Path) -> tuple[float | None, float]:
    """Seconds into ``path`` where its audio's burst begins (None: no burst), and how long its audio lasts."""
    raw = subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le",
                          "-ac", "1", "-ar", "48000", "-"], capture_output=True, check=True).stdout
    pcm = np.abs(np.frombuffer(raw, np.int16).astype(int))
    return (int(np.argmax(pcm > 1000)) / 48000 if pcm.max() > 1000 else None), len(pcm) / 48000


def edl(path: Path, *events: str, drop: bool = False) -> Path:
    """An EDL of these event lines (and comments)."""
    head = ["TITLE: cut", "FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME", ""]
    path.write_text("\n".join(head + list(events)) + "\n")
    return path


def otio_cut(path: Path, *events: tuple[str, str, str, int], rate: float = 25) -> Path:
    """An .otio of one video track: (media name, media's first timecode, source in, frames) each."""
    tl = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    rt, tr, tc = otio.opentime.RationalTime, otio.opentime.TimeRange, otio.opentime.from_timecode
    for name, media_tc, src_in, frames in events:
        ref = otio.schema.ExternalReference(target_url=f"{name}.mov",
                                            available_range=tr(tc(media_tc, rate), rt(100, rate)))
        track.append(otio.schema.Clip(name=name, media_reference=ref,
                                      source_range=tr(tc(src_in, rate), rt(frames, rate))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def shown(edit_path: Path, media: Path, rate: float | None = None) -> list[tuple]:
    """What an edit shows, clip by clip: its record range and which source frames, read from the
    file it names (by file or clip name, in ``media``) at its source times."""
    kw = {"rate": rate} if edit_path.suffix == ".edl" else {}
    tl = otio.adapters.read_from_file(str(edit_path), **kw)
    seen = []
    for track in tl.video_tracks():
        for clip in track.find_clips():
            # an EDL names the file in the clip name (the adapter gives a dissolve's B side the A side's
            # FROM CLIP file), an .otio in its reference
            url = getattr(clip.media_reference, "target_url", None)
            edl_name = edit_path.suffix == ".edl" and (media / clip.name).is_file()
            if edl_name or url:
                path = media / (clip.name if edl_name else Path(url).name)
            else:  # by clip name or reel, as the stem of a file
                names = {clip.name.lower(), clip.metadata.get("cmx_3600", {}).get("reel", "").lower()}
                path = next(p for p in media.iterdir() if p.stem.lower() in names)
            info = probe(str(path))
            fps = float(info.fps)
            ref_range = clip.media_reference.available_range if url and not edl_name else None
            base = ref_range.start_time if ref_range else otio.opentime.from_timecode(info.timecode, fps) \
                if info.timecode else otio.opentime.RationalTime(0, fps)
            vis = clip.visible_range()
            first = round(vis.start_time.value_rescaled_to(fps) - base.value_rescaled_to(fps))
            n = round(vis.duration.value_rescaled_to(fps))
            rec = track.range_of_child(clip)
            seen.append(((rec.start_time.value, rec.duration.value), frame_ids(path)[first:first + n]))
    return seen


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Two four-second 25 fps sources at 01:00:00:00 and 02:00:00:00, and a 29.97 drop-frame one."""
    folder = tmp_path_factory.mktemp("media")
    source(folder / "srcA.mov", "01:00:00:00", reel="R1")
    source(folder / "srcB.mov", "02:00:00:00", reel="R2")
    source(folder / "ntsc.mov", "00:00:58;00", rate="30000/1001")
    source(folder / "ntscndf.mov", "00:00:58:00", rate="30000/1001", seconds=3)
    source(folder / "plain.mov", None, seconds=3)
    return folder


@pytest.fixture(scope="module")
def nearest():
    return load_restorer("nearest", scale=1)


def conformed(edit_path: Path, media: Path, out: Path, nearest, handles: int = 5, **kw):
    plan = conform.plan_conform(str(edit_path), [str(media)], str(out), handles=handles)
    summary = conform.run(plan, nearest, EncodeOptions(codec="prores"), EnhanceOptions(progress=False), **kw)
    return plan, summary


DONE_WHEN = ("001  SRCA     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
             "* FROM CLIP NAME:  srcA",
             "002  SRCB     V     C        02:00:02:00 02:00:03:00 00:00:01:00 00:00:02:00",
             "* FROM CLIP NAME:  srcB")


def test_done_when_edl(tmp_path, media):
    """The issue's case, through the command: two events of one second each, --handles 5."""
    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    out = tmp_path / "out"
    r = run_cli("conform", str(cut), "--media", str(media), "-o", str(out), "--handles", "5", *FAST)
    assert r.returncode == 0, r.stderr
    a, b = out / "srcA.01-00-00-20.mov", out / "srcB.02-00-01-20.mov"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [a.name, b.name, "cut.enhanced.edl"])
    for clip, tc, first, reel in ((a, "01:00:00:20", 20, "R1"), (b, "02:00:01:20", 45, "R2")):
        info = probe(str(clip))
        assert (info.timecode, info.reel_name, info.codec) == (tc, reel, "prores")
        assert frame_ids(clip) == list(range(first, first + 35))  # 35 frames, exactly these
        # the source's audio for the range, copied: the burst at 1.00 s of the source where the range holds
        # it, to the sample; the last packet copied whole (PCM packets here hold up to 1024 samples, 21 ms)
        burst, length = burst_at(clip)
        assert burst == (pytest.approx(1.0 - first / 25, abs=1 / 24000) if first == 20 else None)
        assert 1.4 <= length < 1.4 + 1024 / 48000
    relinked = (out / "cut.enhanced.edl").read_text()
    assert "01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00" in relinked  # the same source and record timecodes
    assert "* FROM CLIP: srcA.01-00-00-20.mov" in relinked and "* FROM CLIP: srcB.02-00-01-20.mov" in relinked
    assert shown(out / "cut.enhanced.edl", out, 25) == shown(cut, media, 25)


def test_done_when_otio(tmp_path, media, nearest):
    cut = otio_cut(tmp_path / "cut.otio", ("srcA", "01:00:00:00", "01:00:01:00", 25),
                   ("srcB", "02:00:00:00", "02:00:02:00", 25))
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest)
    assert [Path(r.output).name for r in plan.ranges] == ["srcA.01-00-00-20.mov", "srcB.02-00-01-20.mov"]
    assert [r.frames for r in plan.ranges] == [35, 35] and summary.exit_code == 0
    assert [probe(r.output).timecode for r in plan.ranges] == ["01:00:00:20", "02:00:01:20"]
    relinked = otio.adapters.read_from_file(str(out / "cut.enhanced.otio"))
    assert [c.media_reference.target_url for c in relinked.find_clips()] == [Path(r.output).name for r in plan.ranges]
    assert shown(out / "cut.enhanced.otio", out) == shown(cut, media)


def test_audio_clips_follow_their_picture(tmp_path, media, nearest):
    """An .otio's audio track clip of a source the picture uses points at the enhanced file where
    a range holds its samples, at the same source times; one outside every range keeps its source."""
    cut = otio_cut(tmp_path / "cut.otio", ("srcA", "01:00:00:00", "01:00:01:00", 25))
    tl = otio.adapters.read_from_file(str(cut))
    audio = otio.schema.Track(kind=otio.schema.TrackKind.Audio)
    tl.tracks.append(audio)
    for src_in in ("01:00:01:05", "01:00:03:00"):
        clip = tl.tracks[0][0].clone()
        clip.source_range = otio.opentime.TimeRange(otio.opentime.from_timecode(src_in, 25),
                                                    otio.opentime.RationalTime(10, 25))
        audio.append(clip)
    otio.adapters.write_to_file(tl, str(cut))
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest)
    assert summary.exit_code == 0 and [Path(r.output).name for r in plan.ranges] == ["srcA.01-00-00-20.mov"]
    relinked = otio.adapters.read_from_file(str(out / "cut.enhanced.otio"))
    assert [c.media_reference.target_url for c in relinked.tracks[1]] == ["srcA.01-00-00-20.mov", "srcA.mov"]
    assert [c.source_range for c in relinked.tracks[1]] == [c.source_range for c in audio]


@pytest.mark.parametrize("adapter, ext", [("fcp_xml", ".xml"), ("fcpx_xml", ".fcpxml")])
def test_fcp_xml_and_fcpxml(tmp_path, media, nearest, adapter, ext):
    """The same cut as FCP 7 XML and FCPXML (made from the .otio by their adapters): relinked in
    the format it came in, to the enhanced files at their first frames' timecodes."""
    pytest.importorskip({"fcp_xml": "otio_fcp_adapter", "fcpx_xml": "otio_fcpx_xml_adapter"}[adapter])
    tl = otio.adapters.read_from_file(str(otio_cut(tmp_path / "cut.otio", ("srcA", "01:00:00:00", "01:00:01:00", 25),
                                                   ("srcB", "02:00:00:00", "02:00:02:00", 25))))
    for clip in tl.find_clips():
        clip.media_reference.target_url = (media / clip.media_reference.target_url).as_uri()
    cut = tmp_path / f"cut{ext}"
    otio.adapters.write_to_file(tl, str(cut), adapter_name=adapter)
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest)
    assert [(Path(r.output).name, r.frames) for r in plan.ranges] == [("srcA.01-00-00-20.mov", 35),
                                                                      ("srcB.02-00-01-20.mov", 35)]
    assert summary.exit_code == 0 and Path(plan.relinked).name == f"cut.enhanced{ext}"
    assert shown(Path(plan.relinked), out) == shown(cut, media)


def test_an_edit_rate_written_short_counts_frames(tmp_path):
    """An .otio at 23.976 (not 24000/1001) ten hours into the day: its frames counted as they are,
    not rescaled by the rates' difference (a frame off at this timecode)."""
    media = tmp_path / "media"
    media.mkdir()
    source(media / "film.mov", "10:00:00:00", rate="24000/1001", seconds=2, reel=None)
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    hours = 10 * 3600 * 24  # 10:00:00:00, counted at 24 as 23.976 timecode is
    ref = otio.schema.ExternalReference(target_url="film.mov")  # where it starts: its own timecode says
    tl = otio.schema.Timeline(tracks=[otio.schema.Track(children=[otio.schema.Clip(
        name="film", media_reference=ref, source_range=tr(rt(hours + 24, 23.976), rt(12, 23.976)))])])
    cut = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(cut))
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(r.first, r.frames, r.timecode) for r in plan.ranges] == [(24, 12, "10:00:01:00")]
    relinked = plan.relinked_timeline().find_clips()[0].media_reference.available_range
    assert relinked == tr(rt(hours + 24, 23.976), rt(12, 23.976))


def test_overlapping_and_touching_ranges_merge(tmp_path, media):
    cut = edl(tmp_path / "cut.edl",
              "001  SRCA     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "002  SRCA     V     C        01:00:01:15 01:00:02:10 00:00:01:00 00:00:01:20",  # overlaps 001
              "003  SRCA     V     C        01:00:02:10 01:00:02:20 00:00:01:20 00:00:02:05",  # touches 002
              "004  SRCA     V     C        01:00:00:00 01:00:00:05 00:00:02:05 00:00:02:10")  # apart; handles cut at 0
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(r.first, r.frames, r.timecode, sorted(u.event for u in r.uses)) for r in plan.ranges] == [
        (0, 5, "01:00:00:00", [4]), (25, 45, "01:00:01:00", [1, 2, 3])]
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=12)
    assert [(r.first, r.frames) for r in plan.ranges] == [(0, 82)]  # the handles join them; 0 is the media's start


def test_speed_changes_read_their_own_frames(tmp_path, media):
    """An event at twice the speed shows 10 record frames of 20 source frames; a freeze frame one."""
    cut = edl(tmp_path / "cut.edl",
              "001  SRCA     V     C        01:00:01:00 01:00:01:20 00:00:00:00 00:00:00:10",
              "M2   SRCA\t\t050.0\t\t\t01:00:01:00",
              "002  SRCB     V     C        02:00:01:00 02:00:01:01 00:00:00:10 00:00:00:20",
              "* FROM CLIP NAME:  srcB FF",
              "* * FREEZE FRAME")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(Path(r.media.path).name, r.first, r.frames) for r in plan.ranges] == [("srcA.mov", 25, 20),
                                                                                  ("srcB.mov", 25, 1)]


def test_dissolve(tmp_path, media, nearest):
    """A 10-frame dissolve from A to B shows 10 more frames of A than the cut does: they are enhanced too."""
    cut = edl(tmp_path / "cut.edl",
              "001  SRCA     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "* FROM CLIP NAME:  srcA",
              "002  SRCA     V     C        01:00:02:00 01:00:02:00 00:00:01:00 00:00:01:00",
              "002  SRCB     V     D 010    02:00:02:00 02:00:03:00 00:00:01:00 00:00:02:00",
              "* FROM CLIP NAME:  srcA",
              "* TO CLIP NAME:  srcB")
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest, handles=0)
    assert [(Path(r.media.path).name, r.first, r.frames) for r in plan.ranges] == [("srcA.mov", 25, 35),
                                                                                  ("srcB.mov", 50, 25)]
    assert summary.exit_code == 0
    relinked = out / "cut.enhanced.edl"
    assert "D 010" in relinked.read_text()
    assert shown(relinked, out, 25) == shown(cut, media, 25)


def test_drop_frame_edit(tmp_path, media, nearest):
    """29.97 drop-frame across a minute: 00:00:59;29 is followed by 00:01:00;02, as SMPTE counts."""
    cut = edl(tmp_path / "cut.edl",
              "001  NTSC     V     C        00:00:59;20 00:01:00;10 01:00:00;00 01:00:00;18",
              "* FROM CLIP NAME:  ntsc", drop=True)
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest, handles=5)
    (r,) = plan.ranges
    assert (r.first, r.frames, r.timecode) == (45, 28, "00:00:59;15")  # 59;20 is frame 50 of 58;00; 01:00;10 is 68
    assert summary.exit_code == 0 and probe(r.output).timecode == "00:00:59;15"
    assert frame_ids(Path(r.output)) == list(range(45, 73))
    relinked = out / "cut.enhanced.edl"
    assert "FCM: DROP FRAME" in relinked.read_text() and "00:00:59;20 00:01:00;10" in relinked.read_text()
    assert shown(relinked, out, NTSC) == shown(cut, media, NTSC)


def test_the_relinked_edl_is_the_edl_with_its_picture_events_renamed(tmp_path, media, nearest):
    """Audio events, channels, notes and the FCM line stay as they were: only the clip name and
    file comments of the events that show a picture change."""
    cut = edl(tmp_path / "cut.edl",
              "001  SRCA     B     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "* FROM CLIP NAME:  srcA",
              "* a note of the editor's",
              "002  SRCB     V     C        02:00:02:00 02:00:03:00 00:00:01:00 00:00:02:00",
              "003  SRCA     A     C        01:00:01:05 01:00:01:15 00:00:01:00 00:00:01:10",
              "* FROM CLIP NAME:  srcA")
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest)
    assert summary.exit_code == 0 and len(plan.ranges) == 2
    original, relinked = cut.read_text().splitlines(), (out / "cut.enhanced.edl").read_text().splitlines()
    assert [x for x in relinked if "CLIP" not in x] == [x for x in original if "CLIP" not in x]
    assert relinked[4:6] == ["* FROM CLIP NAME:  srcA.01-00-00-20.mov", "* FROM CLIP: srcA.01-00-00-20.mov"]
    assert relinked[-2:] == original[-2:]  # the audio event still names its source
    assert shown(out / "cut.enhanced.edl", out, 25) == shown(cut, media, 25)


def test_media_without_timecode(tmp_path, media, nearest):
    """An EDL counts media without timecode from 00:00:00:00; so does an application reading the
    enhanced file, which has none either: the relinked events' source times move with the range."""
    cut = edl(tmp_path / "cut.edl", "001  PLAIN    V     C        00:00:01:00 00:00:02:00 01:00:00:00 01:00:01:00",
              "* FROM CLIP NAME:  plain")
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest, handles=5)
    assert [(Path(r.output).name, r.first, r.frames) for r in plan.ranges] == [("plain.f000020.mov", 20, 35)]
    assert summary.exit_code == 0 and probe(plan.ranges[0].output).timecode is None
    assert "00:00:00:05 00:00:01:05 01:00:00:00 01:00:01:00" in (out / "cut.enhanced.edl").read_text()
    assert shown(out / "cut.enhanced.edl", out, 25) == shown(cut, media, 25)


def test_non_drop_frame_ntsc_and_fcm_drop_frame(tmp_path, media, nearest):
    """29.97 counted non-drop-frame keeps its own labels in the relinked EDL (the adapter would
    write drop-frame ones); an EDL whose FCM says DROP FRAME is counted drop-frame, ':' or ';'."""
    cut = edl(tmp_path / "cut.edl", "001  NTSCNDF  V     C        00:00:59:20 00:01:00:10 01:00:00:00 01:00:00:20",
              "* FROM CLIP NAME:  ntscndf")
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest, handles=0)
    (r,) = plan.ranges
    assert (r.first, r.frames, r.timecode, probe(r.output).timecode) == (50, 20, "00:00:59:20", "00:00:59:20")
    relinked = (out / "cut.enhanced.edl").read_text()
    assert "00:00:59:20 00:01:00:10 01:00:00:00 01:00:00:20" in relinked and "FCM: NON-DROP FRAME" in relinked
    assert shown(out / "cut.enhanced.edl", out, NTSC) == shown(cut, media, NTSC)
    colons = edl(tmp_path / "colons.edl",
                 "001  NTSC     V     C        00:00:59:20 00:01:00:10 01:00:00:00 01:00:00:18",
                 "* FROM CLIP NAME:  ntsc", drop=True)
    (r,) = conform.plan_conform(str(colons), [str(media)], str(out), handles=0).ranges
    assert (r.first, r.frames, r.timecode) == (50, 18, "00:00:59;20")


def test_matroska_media_give_exactly_their_frames(tmp_path, nearest):
    """Matroska keeps times to the millisecond: a range of 7 frames from frame 13 at 29.97 (frame 13
    at 433.8 ms, stored as 434) is 7 frames, not 8."""
    media = tmp_path / "media"
    media.mkdir()
    source(media / "mk.mkv", "00:00:58;00", rate="30000/1001", seconds=1)
    cut = edl(tmp_path / "cut.edl", "001  MK       V     C        00:00:58;13 00:00:58;20 01:00:00;00 01:00:00;07",
              "* FROM CLIP NAME:  mk")
    plan, summary = conformed(cut, media, tmp_path / "out", nearest, handles=0)
    assert summary.exit_code == 0 and frame_ids(Path(plan.ranges[0].output)) == list(range(13, 20))


def test_clip_used_twice(tmp_path, media, nearest):
    """The same shot twice is one range; the same media far apart is two."""
    cut = edl(tmp_path / "cut.edl",
              "001  SRCA     V     C        01:00:01:00 01:00:01:10 00:00:00:00 00:00:00:10",
              "* FROM CLIP NAME:  srcA",
              "002  SRCB     V     C        02:00:00:10 02:00:00:20 00:00:00:10 00:00:00:20",
              "* FROM CLIP NAME:  srcB",
              "003  SRCA     V     C        01:00:01:00 01:00:01:10 00:00:00:20 00:00:01:05",
              "* FROM CLIP NAME:  srcA",
              "004  SRCA     V     C        01:00:03:00 01:00:03:10 00:00:01:05 00:00:01:15",
              "* FROM CLIP NAME:  srcA")
    out = tmp_path / "out"
    plan, summary = conformed(cut, media, out, nearest, handles=2)
    assert [(Path(r.output).name, r.frames, sorted(u.event for u in r.uses)) for r in plan.ranges] == [
        ("srcA.01-00-00-23.mov", 14, [1, 3]), ("srcA.01-00-02-23.mov", 14, [4]), ("srcB.02-00-00-08.mov", 14, [2])]
    assert summary.exit_code == 0
    assert shown(out / "cut.enhanced.edl", out, 25) == shown(cut, media, 25)
    # a second run finds every range made (records), and writes the relinked edit again
    (out / "cut.enhanced.edl").unlink()
    _, again = conformed(cut, media, out, nearest, handles=2)
    assert [r.status for r in again.results] == [FileStatus.SKIPPED] * 3 and (out / "cut.enhanced.edl").exists()


def test_errors_are_one_line(tmp_path, media, monkeypatch):
    out = str(tmp_path / "out")

    def error(cut: Path, **kw) -> str:
        with pytest.raises(UsageError) as e:
            conform.plan_conform(str(cut), [str(media)], out, **kw)
        assert "\n" not in str(e.value)
        return str(e.value)

    missing = edl(tmp_path / "missing.edl",
                  "001  SRCZ     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
                  "* FROM CLIP NAME:  srcZ")
    assert "'srcZ' (event 1): no media named 'srcZ' or 'SRCZ' under " + str(media) in error(missing)
    outside = edl(tmp_path / "outside.edl",
                  "001  SRCA     V     C        01:00:03:20 01:00:04:10 00:00:00:00 00:00:00:15")
    assert "01:00:03:20-01:00:04:09 lies outside its media" in error(outside)
    assert "01:00:00:00-01:00:03:24" in error(outside)
    fast = otio_cut(tmp_path / "fast.otio", ("srcA", "01:00:00:00", "01:00:01:00", 30), rate=30)
    assert "the edit counts it at 30 fps, its media" in error(fast) and "runs at 25 fps" in error(fast)
    dropped = edl(tmp_path / "dropped.edl",
                  "001  SRCA     V     C        00:00:59;20 00:01:00;10 01:00:00;00 01:00:00;18")
    assert "do not fit its media's 25 fps" in error(dropped)
    ndf = edl(tmp_path / "ndf.edl", "001  NTSC     V     C        00:00:59:20 00:01:00:10 01:00:00:00 01:00:00:20")
    assert "the edit counts non-drop-frame timecode, its media" in error(ndf)
    ts = tmp_path / "ts"
    ts.mkdir()
    subprocess.run([MAKER, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:duration=1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-timecode", "01:00:00:00", str(ts / "srcA.ts")],
                   check=True)
    with pytest.raises(UsageError, match="cannot cut MPEG transport or program streams frame-exactly"):
        conform.plan_conform(str(edl(tmp_path / "ts.edl", *DONE_WHEN[:2])), [str(ts)], out)
    broken = edl(tmp_path / "broken.edl", *DONE_WHEN, "003  SRCA     V     C        01:00:01:00")
    assert error(broken).startswith(f"{broken}: line 8: not a CMX 3600 EDL that can be read")
    from enhancer.conform import edit

    monkeypatch.setattr(edit.otio_module().adapters, "available_adapter_names", lambda: ["otio_json"])
    assert "needs the otio-cmx3600-adapter package, which is not installed (pip install otio-cmx3600-adapter" \
        in error(missing)


def test_cli_error_and_dry_run(tmp_path, media, nearest, capsys):
    out = tmp_path / "out"
    missing = edl(tmp_path / "missing.edl",
                  "001  SRCZ     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00")
    r = run_cli("conform", str(missing), "--media", str(media), "-o", str(out), *FAST)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no media named 'SRCZ'" in r.stderr
    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    r = run_cli("conform", str(cut), "--media", str(media), "-o", str(out), "--handles", "5", "--dry-run", "--json",
                *FAST)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["status"], x["source_in"], x["source_out"], x["range_frames"], Path(x["output"]).name)
            for x in lines] == [
        ("planned", "01:00:00:20", "01:00:02:05", 35, "srcA.01-00-00-20.mov"),  # out: after the last, as EDLs say
        ("planned", "02:00:01:20", "02:00:03:05", 35, "srcB.02-00-01-20.mov")]
    assert f"would write the relinked edit {out / 'cut.enhanced.edl'}" in r.stderr
    assert not out.exists()  # nothing written
    plan = conform.plan_conform(str(cut), [str(media)], str(out), handles=5)  # the lines for people
    for res in conform.dry_run(plan, nearest, EncodeOptions(codec="prores"), EnhanceOptions(progress=False)).files:
        conform.report(plan, res, as_json=False, dry_run=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"would enhance: {media / 'srcA.mov'} 01:00:00:20-01:00:02:04, 35 frames, event 1 -> "
                     f"{out / 'srcA.01-00-00-20.mov'}",
                     f"would enhance: {media / 'srcB.mov'} 02:00:01:20-02:00:03:04, 35 frames, event 2 -> "
                     f"{out / 'srcB.02-00-01-20.mov'}"]
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # beside tests/test_ray.py, whose teardown stops every Ray process
def test_ray_makes_the_same_ranges(tmp_path, media):
    """--executor ray: a task per range (a local Ray instance), each over its own span, with the
    same frames, timecodes and relinked edit as the local run."""
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'enhancer[ray]')")
    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    out = tmp_path / "out"
    r = run_cli("conform", str(cut), "--media", str(media), "-o", str(out), "--handles", "5", "--executor", "ray",
                "--json", *FAST, env={"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]  # as each range finishes
    assert sorted((x["status"], x["source_in"], x["frames"]) for x in rows) == [("done", "01:00:00:20", 35),
                                                                               ("done", "02:00:01:20", 35)]
    assert frame_ids(out / "srcA.01-00-00-20.mov") == list(range(20, 55))
    assert probe(str(out / "srcB.02-00-01-20.mov")).timecode == "02:00:01:20"
    assert shown(out / "cut.enhanced.edl", out, 25) == shown(cut, media, 25)


def test_python_api(tmp_path, media):
    import enhancer

    cut = otio_cut(tmp_path / "cut.otio", ("srcA", "01:00:00:00", "01:00:01:00", 25),
                   ("srcB", "02:00:00:00", "02:00:02:00", 25))
    out = tmp_path / "out"
    planned = enhancer.conform_edit(cut, media, out, handles=5, model="nearest", scale=1, dry_run=True)
    assert [r.status for r in planned.files] == [FileStatus.PLANNED] * 2 and not out.exists()
    result = enhancer.conform_edit(cut, [media], out, handles=5, model="nearest", scale=1)
    assert [Path(p).name for p in result.outputs] == ["srcA.01-00-00-20.mov", "srcB.02-00-01-20.mov"]
    assert (out / "cut.enhanced.otio").is_file()
    with pytest.raises(UsageError, match="is not a folder"):
        enhancer.conform_edit(cut, tmp_path / "nowhere", out)


def test_busy_range_and_the_relinked_edit_waits(tmp_path, media, nearest):
    """A range another run is making is left to it (busy, exit 1) and the relinked edit is not
    written until a rerun finds every range made."""
    from enhancer.batch.state import OutputLock

    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    out = tmp_path / "out"
    plan = conform.plan_conform(str(cut), [str(media)], str(out), handles=5)
    out.mkdir()
    lock = OutputLock(plan.ranges[1].output).acquire()
    try:
        _, summary = conformed(cut, media, out, nearest)
    finally:
        lock.release()
    assert [r.status for r in summary.results] == [FileStatus.DONE, FileStatus.BUSY] and summary.exit_code == 1
    assert not conform.complete(summary) and not (out / "cut.enhanced.edl").exists()
    _, again = conformed(cut, media, out, nearest)
    assert [r.status for r in again.results] == [FileStatus.SKIPPED, FileStatus.DONE]
    assert (out / "cut.enhanced.edl").exists()
    # a file of a range's name that this tool did not record is kept, and not pointed at
    (out / "cut.enhanced.edl").unlink()
    shutil.rmtree(out / ".enhancer-records")
    _, third = conformed(cut, media, out, nearest)
    assert [r.error for r in third.results] == ["output exists (use overwrite=True to redo)"] * 2
    assert not conform.complete(third) and not (out / "cut.enhanced.edl").exists()


QUIRKY = ("title:   Cut v2",
          "* exported by an older tool",
          "fcm: non-drop frame",
          "",
          "001  AX       v     c        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
          "* from clip name:  Take 1",
          "* SOURCE FILE: /Volumes/Media/srcA.mov",
          "002  bl   v   c   00:00:00:00 00:00:00:10 00:00:01:00 00:00:01:10",
          "003  srcb     v     c        02:00:02:00 02:00:03:00 00:00:01:10 00:00:02:10")


def test_edl_quirks(tmp_path, media):
    """What EDLs from older tools hold: lower-case keywords, channels and edit types, a comment
    before the first event, black as `bl`, an AX event named only by Avid's `* SOURCE FILE:`; the
    relinked EDL's SOURCE FILE names the enhanced file, not the source it replaces."""
    cut = tmp_path / "cut.edl"
    cut.write_text("\n".join(QUIRKY) + "\n")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(Path(r.media.path).name, r.first, r.frames) for r in plan.ranges] == [("srcA.mov", 25, 25),
                                                                                  ("srcB.mov", 50, 25)]
    relinked = conform.edit.relink_edl(cut.read_text(), plan.picture_files(), 25).splitlines()
    assert relinked[:5] == list(QUIRKY[:5]) and relinked[8:10] == list(QUIRKY[7:9])
    assert relinked[5:7] == ["* FROM CLIP NAME:  srcA.01-00-01-00.mov", "* FROM CLIP: srcA.01-00-01-00.mov"]
    assert relinked[7] == "* SOURCE FILE: srcA.01-00-01-00.mov" and "/Volumes/Media/srcA.mov" not in "\n".join(relinked)
    assert relinked[-2:] == ["* FROM CLIP NAME:  srcB.02-00-02-00.mov", "* FROM CLIP: srcB.02-00-02-00.mov"]


def test_a_source_running_past_midnight(tmp_path):
    """A tape whose timecode passes 23:59:59:24 goes on at 00:00:00:00, and an EDL names its
    frames after midnight so: they lie 2 s into media starting at 23:59:58:00, not outside it."""
    media = tmp_path / "media"
    media.mkdir()
    source(media / "late.mov", "23:59:58:00", seconds=4)
    cut = edl(tmp_path / "cut.edl", "001  LATE     V     C        23:59:59:20 23:59:59:24 01:00:00:00 01:00:00:04",
              "002  LATE     V     C        00:00:01:10 00:00:01:20 01:00:00:04 01:00:00:14")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=2)
    assert [(r.first, r.frames, r.timecode) for r in plan.ranges] == [(43, 8, "23:59:59:18"),
                                                                      (83, 14, "00:00:01:08")]
    outside = edl(tmp_path / "outside.edl",
                  "001  LATE     V     C        00:00:02:10 00:00:02:20 01:00:00:00 01:00:00:10")
    with pytest.raises(UsageError, match="00:00:02:10-00:00:02:19 lies outside its media"):
        conform.plan_conform(str(outside), [str(media)], str(tmp_path / "out"), handles=2)
    across = edl(tmp_path / "across.edl",
                 "001  LATE     V     C        23:59:59:20 00:00:00:10 01:00:00:00 01:00:00:15")
    with pytest.raises(UsageError, match=r"line 4: .*runs across midnight \(23:59:59:20 to 00:00:00:10\).*split"):
        conform.plan_conform(str(across), [str(media)], str(tmp_path / "out"), handles=2)


def test_events_out_of_record_order_or_overlapping(tmp_path, media):
    """An EDL sorted by source (C-mode) or whose record times overlap still says which frames each
    event shows: they are conformed, and the relinked EDL keeps its events' order and times. A
    source and record of different lengths is still refused, with its line."""
    cut = edl(tmp_path / "cut.edl",
              "002  SRCB     V     C        02:00:02:00 02:00:03:00 00:00:01:00 00:00:02:00",
              "* FROM CLIP NAME:  srcB",
              "001  SRCA     V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "* FROM CLIP NAME:  srcA",
              "003  SRCA     V     C        01:00:03:00 01:00:03:10 00:00:00:20 00:00:01:05")  # overlaps 001
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(Path(r.media.path).name, r.first, r.frames, [u.event for u in r.uses]) for r in plan.ranges] == [
        ("srcB.mov", 50, 25, [1]), ("srcA.mov", 25, 25, [2]), ("srcA.mov", 75, 10, [3])]
    relinked = conform.edit.relink_edl(cut.read_text(), plan.picture_files(), 25).splitlines()
    assert [x for x in relinked if not x.startswith("*")] == [x for x in cut.read_text().splitlines()
                                                             if not x.startswith("*")]
    assert relinked[4] == "* FROM CLIP NAME:  srcB.02-00-02-00.mov" and relinked[-2:] == [
        "* FROM CLIP NAME:  srcA.01-00-03-00.mov", "* FROM CLIP: srcA.01-00-03-00.mov"]
    long = edl(tmp_path / "long.edl", *cut.read_text().splitlines()[3:7],
               "003  SRCA     V     C        01:00:03:00 01:00:03:10 00:00:00:20 00:00:01:06")
    with pytest.raises(UsageError, match=r"line 8: .*(don't match|do not match)"):
        conform.plan_conform(str(long), [str(media)], str(tmp_path / "out"), handles=0)


def test_a_latin_1_edl(tmp_path, media):
    """EDLs from older systems are Latin-1, not UTF-8: read as such (a clip name with an accent
    finds its media), and relinked in their own encoding, every untouched byte as it was."""
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(media / "srcA.mov", folder / "café A.mov")
    cut = tmp_path / "cut.edl"
    text = ("TITLE: café\nFCM: NON-DROP FRAME\n001  AX       V     C        01:00:01:00 01:00:02:00 00:00:00:00 "
            "00:00:01:00\n* FROM CLIP NAME:  café A\n* note de l'étalonneur\n")
    cut.write_bytes(text.encode("latin-1"))
    plan = conform.plan_conform(str(cut), [str(folder)], str(tmp_path / "out"), handles=0)
    assert [(Path(r.output).name, r.first, r.frames) for r in plan.ranges] == [("café A.01-00-01-00.mov", 25, 25)]
    (tmp_path / "out").mkdir()
    conform.edit.write_edit(plan.edit, plan.relinked_timeline(), plan.relinked, plan.picture_files())
    assert Path(plan.relinked).read_bytes().decode("latin-1").splitlines() == [
        *text.splitlines()[:3], "* FROM CLIP NAME:  café A.01-00-01-00.mov", "* FROM CLIP: café A.01-00-01-00.mov",
        "* note de l'étalonneur"]


def test_an_earlier_relinked_edit_that_no_longer_holds_goes(tmp_path, media, nearest):
    """A rerun with other handles (or another cut) into the same folder that cannot finish (a range
    busy) leaves no relinked edit of the earlier run behind to be taken for this one's; one that
    says what this run would write stays."""
    from enhancer.batch.state import OutputLock

    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    out = tmp_path / "out"
    conformed(cut, media, out, nearest, handles=5)
    relinked = out / "cut.enhanced.edl"
    before = relinked.read_text()
    for handles, kept in ((5, True), (3, False)):
        plan = conform.plan_conform(str(cut), [str(media)], str(out), handles=handles)
        lock = OutputLock(plan.ranges[1].output).acquire()
        try:
            _, summary = conformed(cut, media, out, nearest, handles=handles)
        finally:
            lock.release()
        assert summary.results[1].status == FileStatus.BUSY and not conform.complete(summary)
        assert (relinked.read_text() == before) if kept else not relinked.exists()


def test_fcm_drop_frame_at_a_rate_that_cannot_drop(tmp_path, media):
    """An EDL of 25 fps media whose FCM line says DROP FRAME (left so by a template): drop-frame
    counting does not exist at 25 fps, so its ':' times are read as they are."""
    cut = edl(tmp_path / "cut.edl", *DONE_WHEN, drop=True)
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=5)
    assert [(r.first, r.frames, r.timecode) for r in plan.ranges] == [(20, 35, "01:00:00:20"), (45, 35, "02:00:01:20")]


def test_a_split_edit(tmp_path, media):
    """A split edit (audio leading the picture) as the first event: its SPLIT line is read, and
    its two lines of one event number are a cut, relinked with FROM (not a dissolve's TO) names."""
    cut = edl(tmp_path / "cut.edl", "SPLIT:   AUDIO DELAY=  00:00:00:05",
              "001  SRCA     A     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "001  SRCA     V     C        01:00:01:05 01:00:02:00 00:00:00:05 00:00:01:00",
              "* FROM CLIP NAME:  srcA")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(r.first, r.frames) for r in plan.ranges] == [(30, 20)]
    relinked = conform.edit.relink_edl(cut.read_text(), plan.picture_files(), 25).splitlines()
    assert relinked[:-2] == cut.read_text().splitlines()[:-1]  # both lines of the event kept
    assert relinked[-2:] == ["* FROM CLIP NAME:  srcA.01-00-01-05.mov", "* FROM CLIP: srcA.01-00-01-05.mov"]


def test_an_offline_edit_names_its_proxies(tmp_path, media):
    """An edit cut on proxies names them (srcA.mxf, srcB_proxy.mp4 is not srcB): the online media
    of the same name in another container are found; a name that is not theirs is not."""
    cut = edl(tmp_path / "cut.edl", "001  AX       V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
              "* FROM CLIP NAME:  srcA.mxf")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [Path(r.media.path).name for r in plan.ranges] == ["srcA.mov"]
    other = edl(tmp_path / "other.edl", "001  AX       V     C        01:00:01:00 01:00:02:00 00:00:00:00 00:00:01:00",
                "* FROM CLIP NAME:  srcA_proxy.mxf")
    with pytest.raises(UsageError, match="no media named 'srcA_proxy.mxf'"):
        conform.plan_conform(str(other), [str(media)], str(tmp_path / "out"), handles=0)


def test_ctrl_c_while_the_media_are_searched_exits_130(tmp_path, media):
    """Ctrl-C before any range runs (the media folders probed for reels, the model loading) stops
    with 130, as README says of every interruption, not click's 'Aborted!' and 1."""
    import sys

    cut = edl(tmp_path / "cut.edl", *DONE_WHEN)
    code = ("import os, signal, time, enhancer.conform as c\n"
            "def probing(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n"
            "c.plan_conform = probing\n"
            "from enhancer.cli import main\n"
            f"main(['conform', {str(cut)!r}, '--media', {str(media)!r}, '-o', {str(tmp_path / 'out')!r}, '-q'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130 and r.stderr.startswith("interrupted"), r.stderr


def test_a_lower_case_speed_change(tmp_path, media):
    """`m2` as an older tool writes it is the speed change `M2` is: 20 source frames in 10 record frames."""
    cut = edl(tmp_path / "cut.edl",
              "001  srca     v     c        01:00:01:00 01:00:01:20 00:00:00:00 00:00:00:10",
              "m2   srca\t\t050.0\t\t\t01:00:01:00",
              "* from clip name:  srcA")
    plan = conform.plan_conform(str(cut), [str(media)], str(tmp_path / "out"), handles=0)
    assert [(r.first, r.frames) for r in plan.ranges] == [(25, 20)]
