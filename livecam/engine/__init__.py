"""The engine: a frame in, the prediction and its class-activation map out.

``core`` holds ``CamEngine``; ``methods`` the CAM formulas and ``scoring`` the probabilities, the
explained class and the result rules, each written once over an array namespace; ``split`` cuts a
model at its target layer; ``fit`` places the network's square input on the frame; ``runtimes``
runs the step behind one contract (TensorFlow, or the body in OpenVINO and the head);
``worker`` batches frames from every source.
"""
