"""The ``livecam`` command: argparse -> frozen settings -> the library. The only place that exits.

Every mistake a user can make ends here as one sentence on stderr and exit code 2 (a
``UserError``); ``--debug`` shows tracebacks instead. ``parsers`` holds the grammar, ``configs``
the settings it becomes, ``view`` and ``serve`` one command each, and ``lists`` the listings (models, layers, cache).
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Sequence

from livecam import logs
from livecam.errors import UserError, shown

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for a tool whose reader left, as in `yes | head -1`


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logs.configure(debug)  # TensorFlow's, CUDA's and OpenCV's own log lines: only with --debug
    # The step is one chain of ops, so TensorFlow gains nothing from running ops side by side,
    # while its extra threads compete with the capture, render and encoder stages for the CPU.
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    atexit.unregister(_skip_the_last_collections)  # once, however often main runs in a process
    atexit.register(_skip_the_last_collections)
    # SIGTERM (a service manager, `timeout`, `kill`) ends a run like Ctrl-C: files closed, summary printed.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        code = _command(argv)
        sys.stdout.flush()  # where a closed pipe usually shows: here, not in the interpreter's exit
        return code
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # stdout's reader left early (`livecam layers resnet50 | head -1`): stop quietly
        # Python's advice (the signal module's note on SIGPIPE): point stdout at /dev/null, so
        # that the interpreter's last flush does not fail again, and exit as a tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UserError as exc:
        if debug:
            raise
        print(f"livecam: error: {shown(exc.cli)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print("livecam: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an environment fault: one line, the traceback with --debug
        if debug:
            raise
        text = str(exc).strip().splitlines()
        print(
            f"livecam: unexpected error: {type(exc).__name__}: {shown(text[0]) if text else ''} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _command(argv: list[str]) -> int:
    from livecam.cli import configs, parsers

    args = parsers.parse(argv)
    if args.command == "models":
        from livecam.cli.lists import models

        return models()
    if args.command == "layers":
        from livecam.cli.lists import layers

        return layers(args.model, weights=args.weights, unsafe_model_load=args.unsafe_model_load)
    if args.command == "batch":
        from livecam.cli.batch import batch

        return batch(configs.batch_config(args))
    if args.command == "cache":
        from livecam.cli.lists import cache

        return cache(args.action)
    if args.command == "serve":
        from livecam.cli.serve import serve

        return serve(configs.serve_config(args))
    from livecam.cli.view import view

    return view(configs.view_config(args))


def _skip_the_last_collections() -> None:
    """Makes the interpreter's exit quick with TensorFlow loaded, without skipping anything that should run.

    At exit Python collects garbage over every object still alive, and TensorFlow's and Keras's
    modules hold millions: that took 1-3 s, more than `livecam serve` may take to stop (2 s). Frozen
    objects are left out of those collections; atexit handlers and ``finally`` blocks run as always.
    """
    gc.freeze()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve_parser():
    """`livecam serve`'s parser (tests/test_serve.py reads its defaults under this name)."""
    from livecam.cli.parsers import serve_parser

    return serve_parser()
