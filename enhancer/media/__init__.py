"""Streaming media I/O through ffmpeg: probe, reader, muxer. Never imports torch."""
