"""RSGI entry point (platform/Procfile): config/wsgi.py's application behind core/front.py, which
receives request bodies in the event loop within WEB_BODY_TIMEOUT before a thread runs a request,
and answers a repeated hit from the loop itself when nothing on its way can wait (rendering/hot.py)."""

from django.conf import settings

from config.wsgi import application as wsgi_application
from core.front import BodyFront
from core.memory import malloc_arenas_bound, malloc_trim_every
from rendering.hot import hot_fast

# Before the front starts its threads: two arenas for all of them, and their free pages given
# back every 10 s (core/memory.py says why).
malloc_arenas_bound(2)
malloc_trim_every(10)
application = BodyFront(wsgi_application, threads=settings.WEB_THREADS, body_timeout=settings.WEB_BODY_TIMEOUT,
                        max_body_bytes=settings.WEB_MAX_BODY_BYTES,
                        max_buffered_bytes=settings.WEB_BODY_BUFFER_BYTES, fast=hot_fast,
                        keep_alive_hint=settings.WEB_KEEPALIVE_HINT)
