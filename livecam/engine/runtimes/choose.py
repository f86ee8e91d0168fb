"""Which runtime runs a model's step, and why (``RuntimeInfo.reason``)."""

from __future__ import annotations

from collections.abc import Callable

from livecam.engine.runtimes.step import Network, Step
from livecam.errors import UserError

RUNTIMES: tuple[str, ...] = ("auto", "tensorflow", "openvino")


def openvino_reason(forced: bool, layer: str) -> str:
    """Why the OpenVINO runtime runs a model (``RuntimeInfo.reason``), the same for a warm start."""
    return "asked for" if forced else f"no GPU, and the model splits cleanly at layer {layer!r}"


def choose_step(network: Network, runtime: str, *, xla: bool, mixed_precision: bool, log: Callable[[str], None]) -> Step:
    """The step for ``runtime`` (``"auto"``, ``"tensorflow"`` or ``"openvino"``).

    ``"auto"`` takes OpenVINO on a machine without a GPU when the model can be cut at the target
    layer and its body converted, else TensorFlow, and says why.

    Raises:
        UserError: ``"openvino"`` for a model it cannot run (never a silent fallback from a
            runtime the caller forced).
    """
    import tensorflow as tf

    from livecam.engine.runtimes import openvino as runtime_openvino
    from livecam.engine.runtimes.openvino_step import open_openvino_step
    from livecam.engine.runtimes.tensorflow import TensorFlowStep

    if runtime == "tensorflow":
        return TensorFlowStep(network, reason="asked for", xla=xla)
    forced = runtime == "openvino"
    why_not = (
        "XLA and mixed precision are TensorFlow options" if xla or mixed_precision else runtime_openvino.unavailable_reason()
    )
    if why_not is None and not forced and tf.config.list_physical_devices("GPU"):
        return TensorFlowStep(network, reason="a GPU is visible, and TensorFlow runs the whole step on it", xla=xla)
    if why_not is None:
        step = open_openvino_step(network, reason=openvino_reason(forced, network.target.name), log=log)
        if not isinstance(step, str):
            return step
        why_not = step
    if forced:
        raise UserError(
            f"The OpenVINO runtime cannot run model {network.name!r}: {why_not}; use --runtime tensorflow (runtime='tensorflow') or auto."
        )
    return TensorFlowStep(network, reason=why_not, xla=xla)
