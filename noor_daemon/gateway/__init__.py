"""The /v1 request path: auth → limits → route → upstream → stream back → meter.

`proxy.py` walks one call; `wire/` holds each client format's rules; `routing.py` picks the
upstream; `upstreams.py` and `http1.py` call it; `simulator.py` is the built-in offline LLM.
"""
