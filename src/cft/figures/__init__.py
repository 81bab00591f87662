"""One function per figure. Each writes a PDF and a PNG with no embedded timestamps, so reruns are
byte-identical and figures can be compared across commits."""
