"""The viewer: the loop that runs frames through the engine and the renderer into its sinks,
the state a viewer steers (``control``, ``keys``), and the sinks (window, recording, outputs)."""
