"""`got-lightning serve`: an OpenAI-compatible HTTP server that reads pages with the batched
generation loop, new requests joining the running batch between decoding steps."""
