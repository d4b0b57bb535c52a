"""enhancer: repair and upscale video with a conditional spatio-temporal GAN."""
__version__ = "0.1.0"
