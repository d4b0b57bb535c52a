#!/usr/bin/env bash
# enhancer in an ffmpeg pipeline: any input ffmpeg reads -> enhancer (stdin to stdout, Matroska)
# -> ffmpeg again (here: a stream copy into MP4, audio included).
#
#   bash examples/pipe.sh INPUT OUTPUT.mp4 [enhance options...]
#
# Uses the ffmpeg on PATH, else the one bundled with enhancer (imageio-ffmpeg).
set -euo pipefail
in=$1; out=$2; shift 2
ffmpeg=$(command -v ffmpeg || python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
"$ffmpeg" -hide_banner -loglevel error -i "$in" -map 0 -c copy -f matroska - \
    | python -m enhancer enhance - -o - -q "$@" \
    | "$ffmpeg" -hide_banner -loglevel error -y -i - -map 0 -c copy -movflags +faststart "$out"
echo "wrote $out"
