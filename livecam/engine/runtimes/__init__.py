"""The runtimes that run the step: the body in OpenVINO with its head in NumPy (``openvino``, ``head``)."""
