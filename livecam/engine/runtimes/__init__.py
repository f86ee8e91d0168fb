"""The runtimes that run the engine's step, behind one contract (``step.Step``, ``step.RuntimeInfo``).

- ``tensorflow``: the whole step in one ``tf.function`` (and the head alone, for OpenVINO bodies
  whose head is not pooling + Dense);
- ``openvino`` (the body, converted and cached in ``cache``) with ``openvino_step`` (body + head) and ``head``
  (a pooling + Dense head, exactly in NumPy);
- ``choose``: which runtime a model gets, and why.
"""
