"""enhancer: repair and upscale video with a conditional spatio-temporal GAN.

The public Python API (see the README's "Python API" section and docs/python-api.md; everything else is private):

* :func:`enhance`: files and folders, with the CLI's semantics;
* :class:`EnhanceRequest` and :func:`run`: the same as one typed request (:func:`watch` for folders
  as files arrive; ``enhancer.api.conform`` for an edit's ranges);
* :func:`conform_edit`: only the frames an edit uses, and the edit relinked to them;
* :class:`Enhancer`: frames and stills held in memory;
* :class:`Result` / :class:`FileResult`: what :func:`enhance` did;
* :class:`EnhancerError` and its subclasses: one-line errors for people.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["enhance", "run", "watch", "EnhanceRequest", "conform_edit", "Enhancer", "Result", "FileResult",
           "EnhancerError", "EnhanceFailed", "InputError", "OutputError", "UsageError", "ArgumentError", "RequestError",
           "ModelError", "__version__"]

_LAZY = {"enhance": "enhancer.api", "conform_edit": "enhancer.api", "Enhancer": "enhancer.api",
         "run": "enhancer.api", "watch": "enhancer.api", "EnhanceRequest": "enhancer.pipeline.request",
         "Result": "enhancer.batch.runner",
         "FileResult": "enhancer.batch.runner"}


def __getattr__(name: str):
    # lazy: `import enhancer` (and the CLI's start) does not import PyTorch, NumPy or OpenCV
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'enhancer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


from enhancer.errors import (ArgumentError, EnhanceFailed, EnhancerError, InputError, ModelError,  # noqa: E402
                             OutputError, RequestError, UsageError)
