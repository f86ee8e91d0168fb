"""``livecam serve``: settings in, the engine and its worker up, the web app run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys

from livecam import logs
from livecam.cli.configs import ServeCommandConfig, check, class_id_of, engine_from_config, engine_line
from livecam.errors import UserError


def serve(config: ServeCommandConfig) -> int:
    from livecam import sources

    with logs.native_stderr_silenced(logs.quiet()):  # TensorFlow's C++ start-up log lines
        from livecam.serve import app as serve

    net = config.server
    check(config.engine, config.look)
    ssl_ctx = serve.ssl_context(net.certfile, net.keyfile)
    token = net.token
    if token is not None and not token.strip():
        raise UserError("Expected a non-empty --token; leave it out to have one generated.")
    if token is None and serve.needs_token(net.host):
        token = serve.new_token()
    spec = config.source
    source = (
        sources.open_source(spec.spec, loop=spec.loop, resolution=spec.resolution, fps=spec.fps)
        if spec.spec is not None
        else None
    )
    try:
        with logs.native_stderr_silenced(logs.quiet()) as say:
            from livecam.engine.worker import EngineWorker

            engine = engine_from_config(config.engine, log=say)
        look = config.look
        app_config = serve.ServeConfig(
            token=token,
            class_id=class_id_of(engine, config.engine),
            blend=look.blend,
            alpha=look.alpha,
            colormap=look.colormap,
            smooth=look.smooth,
            hud=look.hud,
            faithfulness=config.engine.faithfulness,
        )
        with EngineWorker(engine, max_batch=net.max_batch, max_wait_ms=net.max_wait_ms) as worker:
            app = serve.create_app(engine, worker, app_config, source=source)

            def ready(port: int) -> None:
                print(engine_line(engine), file=sys.stderr)
                if source is not None:
                    print(f"livecam: the server's source: {source.description}", file=sys.stderr)
                if ssl_ctx is None and serve.needs_token(net.host):
                    print(
                        f"livecam: note: browsers give the camera only to HTTPS pages or localhost; add --certfile/--keyfile, "
                        f"or tunnel with `ssh -L {port}:localhost:{port} THIS-HOST` and open http://localhost:{port}/",
                        file=sys.stderr,
                    )
                print(
                    f"livecam: open {serve.page_url(net.host, port, token, https=ssl_ctx is not None)}  (Ctrl-C stops)",
                    flush=True,
                )

            serve.run(app, net.host, net.port, ssl_ctx=ssl_ctx, on_ready=ready)
    finally:
        if source is not None:
            source.close()
    print("livecam: server stopped", file=sys.stderr, flush=True)
    return 0
