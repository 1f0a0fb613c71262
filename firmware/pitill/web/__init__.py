"""The small web layer the terminal's live mirror and the host's dashboard share.

It runs inside the owning process's asyncio loop (aiohttp), serves its own assets (no CDN), binds
to 127.0.0.1 unless told otherwise and asks for a token on any other address. aiohttp is an
optional extra (`pip install pitill[web]`): a terminal that never serves a page never loads it.
"""
