"""Local fakes of the services PCIM's night pipeline talks to, speaking their wire protocols, so the
REAL client libraries are exercised: YouTube Data API v3 (google-api-python-client), the channel RSS
feed (feedparser), YouTube's watch page + Innertube player + timedtext captions
(youtube-transcript-api) and Gemini ``generateContent`` (google-genai). One Starlette app serves
them all (:mod:`.app`) on a real localhost port in a background thread (:mod:`.server`)."""

from tests.support.fakes_pcim.app import FakeState, FakeVideo, fake_google_app
from tests.support.fakes_pcim.server import ServerThread

__all__ = ["FakeState", "FakeVideo", "ServerThread", "fake_google_app"]
