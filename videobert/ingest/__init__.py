"""Ingest stages: video sources, download (yt-dlp), transcripts (YouTube, HowTo100M, subtitles), punctuation
into timed sentences, and the run/skip plan of the per-video ingest stages."""
