"""Serve moto's S3 API on 127.0.0.1, one request at a time (tests/publish.rs).

moto's own `moto_server` answers on threads and checks If-Match and
If-None-Match before storing, without a lock, so two conditional writes can
both pass the check; real S3 makes each conditional write atomic. Serving one
request at a time gives the tests that guarantee. Prints the port, then
serves until stdin closes (the test process is gone) or the time limit.
"""

import os
import sys
import threading

from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

limit = float(sys.argv[1]) if len(sys.argv) > 1 else 900.0
app = DomainDispatcherApplication(create_backend_app)
server = make_server(
    "127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler
)
os.environ["MOTO_PORT"] = str(server.port)
print(server.port, flush=True)


def watchdog():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=watchdog, daemon=True).start()
threading.Timer(limit, lambda: os._exit(0)).start()
server.serve_forever()
