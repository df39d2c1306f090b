"""A web page for the classifier in model.onnx: `python app.py`, then open the address it
prints (http://127.0.0.1:7860; set GRADIO_SERVER_PORT for another port).

Made by tune_food's export; needs only requirements.txt (no PyTorch). Every file it
reads is found beside app.py, so it runs from any folder.
"""

import json
import os

import gradio as gr
import onnxruntime as ort

from preprocess import load_rgb, to_input

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "model.json")) as fh:
    CARD = json.load(fh)
OPTIONS = ort.SessionOptions()   # the threads model.json's cpu_ms was measured with
OPTIONS.intra_op_num_threads = OPTIONS.inter_op_num_threads = CARD["threads"]
SESSION = ort.InferenceSession(os.path.join(HERE, "model.onnx"), OPTIONS,
                               providers=["CPUExecutionProvider"])
INPUT = SESSION.get_inputs()[0].name


def classify(path):
    """The probability of each class for the photo at ``path``."""
    if path is None:
        raise gr.Error("Upload a photo first.")
    try:
        x = to_input(load_rgb(path), CARD["preprocessing"])
    except Exception as exc:   # not an image Pillow can read
        raise gr.Error(f"Cannot read this file as a photo ({type(exc).__name__}).")
    (probabilities,) = SESSION.run(None, {INPUT: x})
    return {name: float(p) for name, p in zip(CARD["classes"], probabilities[0])}


examples_dir = os.path.join(HERE, "examples")
demo = gr.Interface(
    fn=classify,
    # the uploaded file itself (image_mode=None: Gradio does not re-encode it)
    inputs=gr.Image(type="filepath", image_mode=None, label="Photo"),
    outputs=gr.Label(num_top_classes=len(CARD["classes"]), label="Prediction"),
    title=CARD["title"],
    description=(f"{CARD['model']} (frozen, ImageNet) with a head trained by tune_food; "
                 f"about {CARD['cpu_ms']:.0f} ms per photo on {CARD['threads']} CPU "
                 f"thread(s). It knows only {', '.join(CARD['classes'])}: any photo gets "
                 "one of them."),
    examples=[[os.path.join(examples_dir, f)] for f in sorted(os.listdir(examples_dir))],
    flagging_mode="never",
    api_name="classify",
)

if __name__ == "__main__":
    demo.launch()
