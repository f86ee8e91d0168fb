"""``livecam serve``: the aiohttp app, the wire protocol, the MJPEG feed, metrics and the page (web/)."""
