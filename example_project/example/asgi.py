"""ASGI entry point: ``uvicorn example.asgi:application`` (``make serve-asgi``).

Async views (``/async/product/<pk>/``) then run on the event loop and reach Redis through the
cache's native async methods; sync views run in Django's thread pool as usual.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
application = get_asgi_application()
