"""Media formats: H.264 encoding and decoding, (fragmented) MP4, JPEG. No keys, no files."""
