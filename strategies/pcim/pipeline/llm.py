"""LLM extraction (strategies.md I3): the schema, the prompt, strict validation, and the providers.

The reply must be exactly ``{"video_summary": str (optional), "recommendations": [{"ticker_or_name":
str, "conviction": str}]}`` — no other key at either level, the right types. An invalid reply is
retried once, then the video is dropped ``PCIM_EXTRACTION_FAILED`` (:func:`extract`). A conviction
other than HIGH/MEDIUM in a well-formed reply is not a format error: that item is rejected by I5.

Providers (:class:`~strategies.pcim.pipeline.types.LlmProvider`):

* :class:`GeminiProvider` — ``google-genai``, temperature 0, ``response_mime_type=application/json``
  with :data:`EXTRACTION_SCHEMA`; ``base_url`` points the real client elsewhere (the tests' fake);
  429/5xx/network → :class:`TransientSourceError` (the caller backs off), other 4xx → :class:`LlmError`.
* :class:`RulesProvider` — keyless and deterministic: names of the listing master found in the
  transcript next to a buy cue. Not an LLM; for the demo, simulations and tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from strategies.pcim.pipeline.listing import ListingMaster, normalise
from strategies.pcim.pipeline.types import LlmError, LlmProvider, TranscriptText, TransientSourceError, VideoRef

EXTRACTION_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "video_summary": {"type": "string"},
        "recommendations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "ticker_or_name": {"type": "string"},
                    "conviction": {"type": "string", "enum": ["HIGH", "MEDIUM"]},
                },
                "required": ["ticker_or_name", "conviction"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["recommendations"],
    "additionalProperties": False,
}

_TOP = {"video_summary", "recommendations"}
_ITEM = {"ticker_or_name", "conviction"}
TRANSCRIPT_OPEN = "<<<TRANSCRIPT"
TRANSCRIPT_CLOSE = "TRANSCRIPT>>>"


class InvalidReply(ValueError):
    """The reply does not follow the I3 format; the message says where."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    ticker_or_name: str
    conviction: str


@dataclass(frozen=True, slots=True)
class Extraction:
    recommendations: tuple[Recommendation, ...]
    video_summary: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "video_summary": self.video_summary,
            "recommendations": [
                {"ticker_or_name": r.ticker_or_name, "conviction": r.conviction} for r in self.recommendations
            ],
        }


def parse_reply(raw: str) -> Extraction:
    """Strict I3 validation of one raw reply."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidReply(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidReply("top level is not an object")
    extra = set(data) - _TOP
    if extra:
        raise InvalidReply(f"unexpected key(s): {sorted(extra)}")
    if "recommendations" not in data:
        raise InvalidReply("missing key: recommendations")
    summary = data.get("video_summary")
    if summary is not None and not isinstance(summary, str):
        raise InvalidReply("video_summary is not a string")
    recs = data["recommendations"]
    if not isinstance(recs, list):
        raise InvalidReply("recommendations is not a list")
    out = []
    for i, item in enumerate(recs):
        if not isinstance(item, dict):
            raise InvalidReply(f"recommendations[{i}] is not an object")
        if set(item) != _ITEM:
            raise InvalidReply(f"recommendations[{i}] keys {sorted(item)} != {sorted(_ITEM)}")
        name, conv = item["ticker_or_name"], item["conviction"]
        if not isinstance(name, str) or not name.strip():
            raise InvalidReply(f"recommendations[{i}].ticker_or_name is not a non-empty string")
        if not isinstance(conv, str):
            raise InvalidReply(f"recommendations[{i}].conviction is not a string")
        out.append(Recommendation(name.strip(), conv.strip().upper()))
    return Extraction(tuple(out), summary)


def build_prompt(video: VideoRef, transcript: TranscriptText, max_chars: int = 60_000) -> str:
    text = transcript.text[:max_chars]
    return (
        "You read the Korean captions of a stock-market commentary video and list the Korean listed stocks "
        "the speaker recommends BUYING for the next session.\n"
        'Answer with JSON only, exactly: {"video_summary": "<one sentence>", "recommendations": '
        '[{"ticker_or_name": "<KRX company name or 6-digit code>", "conviction": "HIGH" | "MEDIUM"}]}.\n'
        "HIGH = an explicit, strong buy call (강력 추천, 적극 매수, 최선호주, 확신). MEDIUM = a buy idea or a "
        "positive watch (추천, 관심, 매수 고려). Leave out stocks mentioned neutrally or negatively, indices, ETFs, "
        "sectors and foreign stocks. No other keys. An empty list when nothing is recommended.\n"
        f"video_id: {video.video_id}\nchannel: {video.channel_title or video.channel_id}\ntitle: {video.title}\n"
        f"{TRANSCRIPT_OPEN}\n{text}\n{TRANSCRIPT_CLOSE}\n"
    )


@dataclass
class Attempt:
    attempt: int
    raw: str | None
    valid: bool
    error: str | None
    extraction: Extraction | None = None


@dataclass
class ExtractionResult:
    extraction: Extraction | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.extraction is None


def extract(
    provider: LlmProvider,
    prompt: str,
    call: Callable[[Callable[[], str]], str] | None = None,
    max_attempts: int = 2,
) -> ExtractionResult:
    """Ask ``provider``; an invalid reply is asked once more (I3). ``call`` wraps each request (back-off
    on transient errors); a TransientSourceError that outlives it propagates (the video stays pending)."""
    result = ExtractionResult(None)
    for n in range(1, max_attempts + 1):

        def ask() -> str:
            return provider.generate(prompt, EXTRACTION_SCHEMA)

        raw = call(ask) if call is not None else ask()
        try:
            parsed = parse_reply(raw)
        except InvalidReply as exc:
            result.attempts.append(Attempt(n, raw, False, str(exc)))
            continue
        result.attempts.append(Attempt(n, raw, True, None, parsed))
        result.extraction = parsed
        break
    return result


# --------------------------------------------------------------------------- Gemini


def _transport_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [httpx.TransportError]
    try:
        import httpx2

        errs.append(httpx2.TransportError)
    except (ImportError, AttributeError):
        pass
    return tuple(errs)


class GeminiProvider:
    name = "gemini"

    def __init__(self, api_key: str, model: str, *, base_url: str | None = None, timeout_sec: float = 120.0) -> None:
        from google import genai
        from google.genai import types

        self.model = model
        self._types = types
        options = types.HttpOptions(base_url=base_url, timeout=int(timeout_sec * 1000))
        self._client = genai.Client(api_key=api_key, http_options=options)
        self._transport = _transport_errors()

    def generate(self, prompt: str, schema: dict[str, object]) -> str:
        from google.genai import errors

        config = self._types.GenerateContentConfig(
            temperature=0.0, response_mime_type="application/json", response_json_schema=schema
        )
        try:
            resp = self._client.models.generate_content(model=self.model, contents=prompt, config=config)
        except errors.APIError as exc:
            code = int(exc.code or 0)
            if code == 429 or code >= 500:
                raise TransientSourceError(f"Gemini {code} {exc.status or ''}".strip()) from exc
            raise LlmError(f"Gemini {code} {exc.status or ''}: {exc.message or ''}".strip()) from exc
        except self._transport as exc:
            raise TransientSourceError(f"Gemini unreachable: {type(exc).__name__}") from exc
        return resp.text or ""


# --------------------------------------------------------------------------- rule-based (keyless)

HIGH_CUES = ("강력추천", "강력 추천", "적극매수", "적극 매수", "최선호", "확신", "꼭 사", "top pick")
MEDIUM_CUES = ("추천", "관심", "매수 고려", "매수고려", "주목", "담아", "사볼 만", "좋아 보")
NEGATIVE_CUES = ("매도", "비추천", "피하", "조심", "팔아", "손절", "추천하지 않")


class RulesProvider:
    """Keyless extractor over the listing master (see the module docstring); output in the I3 format."""

    name = "rules"
    model = "listing-cues-v1"

    def __init__(self, listing: ListingMaster) -> None:
        self.names = [(normalise(n), code, n) for n, code in listing.names()]

    def generate(self, prompt: str, schema: dict[str, object]) -> str:
        start, end = prompt.find(TRANSCRIPT_OPEN), prompt.rfind(TRANSCRIPT_CLOSE)
        text = prompt[start + len(TRANSCRIPT_OPEN) : end] if 0 <= start < end else prompt
        best: dict[str, tuple[str, str]] = {}
        for sentence in re.split(r"(?<=[.!?。])\s+|\n+", text):
            flat = normalise(sentence)
            if not flat or any(normalise(c) in flat for c in NEGATIVE_CUES):
                continue
            conv = (
                "HIGH"
                if any(normalise(c) in flat for c in HIGH_CUES)
                else ("MEDIUM" if any(normalise(c) in flat for c in MEDIUM_CUES) else None)
            )
            if conv is None:
                continue
            taken = flat
            for norm, code, surface in self.names:
                if norm and norm in taken:
                    taken = taken.replace(norm, "\0")
                    prev = best.get(code)
                    if prev is None or (prev[1] == "MEDIUM" and conv == "HIGH"):
                        best[code] = (surface, conv)
        recs = [{"ticker_or_name": surface, "conviction": conv} for _, (surface, conv) in sorted(best.items())]
        return json.dumps(
            {"video_summary": f"{len(recs)} recommendation(s) by listing cues", "recommendations": recs},
            ensure_ascii=False,
        )
