"""The field's published models: a per-frame super-resolution or restoration model file read into
a :class:`FrameModel`, the descriptor the rest of the code asks (never the file name).

``.pth``, ``.pt``, ``.ckpt`` and ``.safetensors`` files (a ``.safetensors`` without an enhancer
card) go through spandrel, which recognises the architecture from the names and shapes of the
tensors (ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, SPAN, DAT, ...). Reading them never runs code
from the file: a pickle is read by PyTorch's ``weights_only`` unpickler, which builds tensors and
plain containers and refuses every other Python object, and a TorchScript program is refused. The
tensors are checked to be finite before the model is built.

``.onnx`` files run in onnxruntime (an optional dependency: ``pip install 'enhancer[onnx]'``). An
ONNX graph is data, not code; the model must take one (N, 3, H, W) float image in [0, 1] with a
free height and width, and its scale is measured on a small probe image.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from enhancer.errors import ModelError, option

SPANDREL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
ONNX_SUFFIXES = (".onnx",)
SUFFIXES = SPANDREL_SUFFIXES + ONNX_SUFFIXES
SCALES = range(1, 9)  # what the pipeline accepts from a field model (1: restoration at the same size)
# the oldest PyTorch whose weights_only unpickler is trusted with a stranger's pickle: before 2.6 a
# crafted file ran code through it (CVE-2025-32434, GHSA-53q9-r3pm-6pq6), and before 2.10 one
# could corrupt memory through unchecked SETITEM(S) opcodes and storage sizes (CVE-2026-24747).
# weights_only itself exists since 1.13 and is torch.load's default since 2.6; neither makes the
# unpickler safe. Only pickles (.pth, .pt, .ckpt) need it: safetensors and ONNX hold no code path.
SAFE_PICKLE_TORCH = (2, 10)
_PROBE = 64  # side of the image an ONNX model's scale is measured on


@dataclass
class FrameModel:
    """A per-frame image model and what callers need to know to run it."""

    name: str  # the file's stem
    kind: str  # "spandrel" | "onnx"
    arch: str  # architecture as spandrel names it, or "onnx"
    scale: int
    run: Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW)
    sha256: str  # of the file's bytes: part of every output's recipe
    module: torch.nn.Module | None = None  # the PyTorch module (spandrel), moved by the restorer
    precisions: tuple[str, ...] = ("fp32",)  # what it may run in
    multiple_of: int = 1  # input height and width must be multiples of this (padded otherwise)
    minimum: int = 0  # nor smaller than this
    square: bool = False  # and square
    tiling: str = "supported"  # supported | discouraged | internal (spandrel's advice)
    parameters: int | None = None
    info: dict = field(default_factory=dict)  # for `describe` and the model card

    def card(self) -> dict:
        return {"name": self.name, "arch": self.arch, "scale": self.scale, "source": self.kind,
                "task": "web" if self.scale > 1 else "archive", "variant": "field", **self.info}


def is_field_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file of the field's models (by suffix; a ``.safetensors`` counts
    only when it holds no enhancer card)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES or not p.is_file():
        return False
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                return "enhancer" not in (f.metadata() or {})
        except Exception:  # noqa: BLE001 - unreadable: the enhancer loader says why
            return False
    return True


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: str | os.PathLike, device: torch.device | None = None) -> FrameModel:
    """A field model file as a :class:`FrameModel` (PyTorch modules on the CPU in fp32; an ONNX
    session on ``device`` where onnxruntime can use it). Raises one :class:`ModelError` line
    for anything it cannot use."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return _load_onnx(path, device)
    if suffix in SPANDREL_SUFFIXES:
        return _load_spandrel(path)
    raise ModelError(f"not a model file enhancer reads (it reads {', '.join(SUFFIXES)})", path=path)


# ---- PyTorch files through spandrel -----------------------------------------------------------
def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _check_safe_torch(path: str) -> None:
    """Refuse to unpickle ``path`` on a PyTorch whose weights-only loader a file can get past."""
    import re

    version = str(torch.__version__)
    m = re.match(r"(\d+)\.(\d+)", version)
    if m is None or (int(m.group(1)), int(m.group(2))) < SAFE_PICKLE_TORCH:
        need = ".".join(map(str, SAFE_PICKLE_TORCH))
        raise ModelError(f"PyTorch {version} cannot read a pickled model file safely (its weights-only loader can "
                         f"be made to run code from the file before {need})", path=path,
                         hint=f"pip install 'torch>={need}', or use a .safetensors or .onnx copy of the model")


def _read_state(path: str) -> dict:
    """The tensors of a .pth/.pt/.ckpt/.safetensors file, read without running code from it."""
    if path.lower().endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as e:  # noqa: BLE001 - safetensors' own error types for bad headers
            raise ModelError(f"not a readable .safetensors file ({e})", path=path) from None
    _check_safe_torch(path)
    if _is_torchscript(path):
        raise ModelError("a TorchScript program, not a file of weights: enhancer does not run code from model "
                         "files", path=path, hint="use the model's .pth or .safetensors weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an UnpicklingError for any Python object but tensors
        text = str(e)
        # PyTorch's message: a paragraph on weights_only, then what its unpickler met
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        if "global" in text.lower() and "WeightsUnpickler" in text:
            raise ModelError("the file holds Python objects beside its weights, and reading them would run code "
                             "from the file", path=path,
                             hint="use a plain state dict (.pth) or .safetensors copy of the model") from None
        first = detail[0].strip() if detail and detail[0].strip() else type(e).__name__
        raise ModelError(f"not a readable PyTorch file ({first[:200]})", path=path) from None
    if not isinstance(obj, dict):
        raise ModelError(f"the file holds a {type(obj).__name__}, not a dictionary of weights", path=path)
    return obj


def _load_spandrel(path: str) -> FrameModel:
    try:
        import spandrel
    except ImportError:
        raise ModelError("reading the field's models needs spandrel", path=path,
                         hint="pip install spandrel") from None
    state = spandrel.canonicalize_state_dict(_read_state(path))
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError("the file holds no weights", path=path)
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelError(f"weights are not finite: tensor {name} holds NaN or infinite values", path=path,
                             hint="the file is damaged or came from a diverged training run")
    try:
        desc = spandrel.ModelLoader(device="cpu").load_from_state_dict(tensors)
    except spandrel.UnsupportedModelError:
        raise ModelError("spandrel recognises no architecture in this file", path=path,
                         hint="it reads the architectures listed in spandrel's documentation") from None
    except Exception as e:  # noqa: BLE001 - an architecture's own loader failing on odd shapes
        raise ModelError(f"spandrel could not build the model ({type(e).__name__}: {e})", path=path) from None
    arch = desc.architecture.name
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise ModelError(f"{arch} is an inpainting model (it needs a mask), not one for video", path=path)
    if desc.purpose == "FaceSR":
        raise ModelError(f"{arch} restores aligned face crops, not whole frames", path=path)
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise ModelError(f"{arch} takes {desc.input_channels} and gives {desc.output_channels} channels; enhancer "
                         "runs RGB models (3 in, 3 out)", path=path)
    if desc.scale not in SCALES:
        raise ModelError(f"{arch} works at x{desc.scale}; enhancer runs models of x1 to x8", path=path)
    precisions = ("fp32",) + (("bf16",) if desc.supports_bfloat16 else ()) + (("fp16",) if desc.supports_half else ())
    req = desc.size_requirements
    module = desc.model.eval()
    call = getattr(desc, "_call_fn", None)  # spandrel's per-architecture call (a few wrap the module)

    def run(x: torch.Tensor) -> torch.Tensor:
        return call(module, x) if call is not None else module(x)

    return FrameModel(name=Path(path).stem, kind="spandrel", arch=arch, scale=int(desc.scale), run=run,
                      sha256=file_sha256(path), module=module, precisions=precisions,
                      multiple_of=int(req.multiple_of), minimum=int(req.minimum), square=bool(req.square),
                      tiling=desc.tiling.name.lower(),
                      parameters=sum(p.numel() for p in module.parameters()),
                      info={"purpose": desc.purpose, "tags": list(desc.tags)})


# ---- ONNX files through onnxruntime -----------------------------------------------------------
_ONNX_FLOAT = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _load_onnx(path: str, device: torch.device | None) -> FrameModel:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("ONNX models need onnxruntime", path=path, hint="pip install 'enhancer[onnx]'") from None
    providers = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError("this onnxruntime cannot use the GPU", path=path,
                             hint=f"pip install onnxruntime-gpu, or {option('device')} cpu")
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # its warnings are about graph optimisation, not about the pictures
    try:
        session = ort.InferenceSession(path, sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"onnxruntime cannot load the model ({first[:300]})", path=path) from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(f"the model takes {len(inputs)} inputs; enhancer runs models of one image", path=path)
    inp = inputs[0]
    if len(inp.shape) != 4 or inp.type not in _ONNX_FLOAT:
        raise ModelError(f"the model's input is {inp.type} of shape {inp.shape}; enhancer runs models of one "
                         "(N, 3, H, W) float image", path=path)
    n, c, h, w = inp.shape
    if isinstance(c, int) and c != 3:
        raise ModelError(f"the model takes {c} channels; enhancer runs RGB models", path=path)
    if isinstance(h, int) or isinstance(w, int):
        raise ModelError(f"the model takes only {h}x{w} images", path=path,
                         hint="export it with a free height and width (dynamic axes)")
    dtype = _ONNX_FLOAT[inp.type]
    batch = n if isinstance(n, int) else None  # a fixed batch (usually 1): frames go that many at a time
    out_name = outputs[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(dtype, copy=False)
        step = batch or len(arr)
        parts = [session.run([out_name], {inp.name: arr[i:i + step]})[0] for i in range(0, len(arr), step)]
        return torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False))

    if batch not in (None, 1):
        raise ModelError(f"the model takes batches of exactly {batch} images", path=path,
                         hint="export it with a batch of 1 or a free batch size")
    try:
        probe = run(torch.zeros(1, 3, _PROBE, _PROBE))
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"the model failed on a {_PROBE}x{_PROBE} test image ({first[:300]})", path=path) from None
    if probe.ndim != 4 or probe.shape[1] != 3 or probe.shape[2] != probe.shape[3] or probe.shape[2] % _PROBE:
        raise ModelError(f"the model turned a 1x3x{_PROBE}x{_PROBE} image into {list(probe.shape)}; enhancer runs "
                         "models whose output is the input scaled by a whole number", path=path)
    scale = probe.shape[2] // _PROBE
    if scale not in SCALES:
        raise ModelError(f"the model works at x{scale}; enhancer runs models of x1 to x8", path=path)
    return FrameModel(name=Path(path).stem, kind="onnx", arch="onnx", scale=scale, run=run, sha256=file_sha256(path),
                      precisions=("fp16",) if dtype == np.float16 else ("fp32",),
                      info={"providers": [p if isinstance(p, str) else p[0] for p in session.get_providers()]})
