"""enhancer from Python, as in a notebook: a file, then frames in memory, then a before/after still.

    python examples/notebook.py [OUTPUT_FOLDER]      (run from the repository root: it uses samples/)
"""
import sys
from pathlib import Path

import cv2
import numpy as np

import enhancer

out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebook-out")

# 1. a whole file, the CLI's semantics (a second run would skip it)
result = enhancer.enhance("samples/bikes.mp4", out / "bikes-x2.mp4", duration=1)
print(result.files[0].status, result.files[0].frames, "frames ->", result.outputs[0])

# 2. frames held in memory: OpenCV reads BGR, enhancer wants RGB
model = enhancer.Enhancer()  # the default model, general-x2
print(model, "reads", model.context, "frames on each side; card:", model.model_card["name"])
video = cv2.VideoCapture("samples/traffic.mp4")


def frames(capture, limit):
    for _ in range(limit):
        ok, bgr = capture.read()
        if not ok:
            return
        yield bgr[..., ::-1]


enhanced = list(model.frames(frames(video, 12)))
print(len(enhanced), "frames of", enhanced[0].shape)

# 3. a before/after still of the middle frame: lanczos on the left, the model on the right
video.set(cv2.CAP_PROP_POS_FRAMES, 6)
before = next(frames(video, 1))
lanczos = enhancer.Enhancer("lanczos").image(before)
h, w = lanczos.shape[:2]
side = np.concatenate([lanczos[:, : w // 2], enhanced[6][:, w // 2:]], axis=1)
cv2.imwrite(str(out / "before-after.png"), side[..., ::-1])
print("wrote", out / "before-after.png")
