"""Inference: the restorer interface, classical upscalers, the engine that runs a model over a video."""
