"""gunicorn settings for `make bench`: the repository's gunicorn.conf.py, with one override.

All three servers of a benchmark run (the API and both reference apps) load this
file, so they share every setting: worker class, worker count, timeouts,
keep-alive. The access log is turned off for all three (a log line per request
would dominate the constant route) unless BENCH_ACCESS_LOG=1 keeps the
repository's setting for all three.
"""

import os
import runpy

_repo_conf = os.environ.get("BENCH_GUNICORN_CONF") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gunicorn.conf.py"
)
globals().update({name: value for name, value in runpy.run_path(_repo_conf).items() if not name.startswith("__")})

if os.environ.get("BENCH_ACCESS_LOG") != "1":
    accesslog = None
