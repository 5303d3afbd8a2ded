"""PCIM's night pipeline (strategies.md §4.1): typed sources, LLM extraction, listing master, orchestration.

Modules: ``types`` (the parts' protocols and errors), ``youtube_api`` (YouTube Data API v3 discovery),
``rss`` (channel feed discovery), ``transcripts`` (youtube-transcript-api captions), ``offline`` (a
folder of transcript files: discovery + captions without keys), ``llm`` (schema, prompt, strict
validation, Gemini and rule-based providers), ``listing`` (names → codes), ``retry`` (back-off),
``night`` (the orchestration and session windows), ``factory`` (build it from the config).
Run ``python -m strategies.pcim.pipeline --help`` for the command-line entry point.
"""
