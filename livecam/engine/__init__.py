"""The engine: a frame in, the prediction and its class-activation map out.

``core`` holds ``CamEngine``; ``methods`` the CAM formulas over an array namespace; ``split`` cuts a
model at its target layer; ``fit`` places the network's square input on the frame; ``runtimes``
runs the step (TensorFlow, or the body in OpenVINO); ``worker`` batches frames from every source.
"""
