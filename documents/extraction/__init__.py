"""Extraction, the first step of ingest: a stored file (or a fetched web page) -> plain text.

`readers` turns each format's bytes into text, `sandbox` runs the readers in a child
process with memory, CPU and time limits, and `fetching` gets a web page by URL
without letting an address reach the private network.
"""
