"""The PyTorch peer's inference cost against input size (peer's own venv).

Not part of gff_keras and never imported by it or its tests: it runs in a
separate virtualenv with PyTorch (`pip install torch==2.13.0`) beside the
peer file, for the comparison in docs/benchmarks.md:

    /path/to/torch-venv/bin/python scripts/peer_inference_cost.py \
        --peer=../shared/peers/torch_gffnet.py --variant=gff_dfp \
        --depth=101 --num_classes=19 \
        --sizes=512x512,1024x1024,1024x2048 --slide=1024x2048:769:513

Each setting runs in a fresh process (its own peak RSS): eval mode,
`torch.inference_mode`, batch 1, the first call and the median of
`--runs` later ones. Sliding windows follow `predict_logits(mode="slide")`:
the image is padded at the bottom and right to at least the crop, windows
every `stride` pixels with the last one aligned to the edge, logits
averaged over the windows covering each pixel.
"""

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time


def load_peer(path):
    spec = importlib.util.spec_from_file_location("torch_gffnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def window_starts(size, crop, stride):
    padded = max(size, crop)
    count = (padded - crop + stride - 1) // stride + 1
    return [min(i * stride, padded - crop) for i in range(count)], padded


def slide(torch, model, image, crop, stride, num_classes):
    _, _, height, width = image.shape
    tops, padded_h = window_starts(height, crop, stride)
    lefts, padded_w = window_starts(width, crop, stride)
    padded = torch.nn.functional.pad(
        image, (0, padded_w - width, 0, padded_h - height)
    )
    total = torch.zeros(1, num_classes, padded_h, padded_w)
    count = torch.zeros(1, 1, padded_h, padded_w)
    for top in tops:
        for left in lefts:
            window = padded[:, :, top : top + crop, left : left + crop]
            total[:, :, top : top + crop, left : left + crop] += model(window)
            count[:, :, top : top + crop, left : left + crop] += 1
    return (total / count)[:, :, :height, :width]


def run_setting(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    peer = load_peer(args.peer)
    torch.manual_seed(0)
    model = peer.SegmentationNet(args.variant, args.depth, args.num_classes)
    model.eval()
    height, width = (int(v) for v in args.shape.split("x"))
    image = torch.randn(1, 3, height, width)

    def call():
        start = time.perf_counter()
        with torch.inference_mode():
            if args.crop:
                out = slide(
                    torch, model, image, args.crop, args.stride,
                    args.num_classes,
                )  # fmt: skip
            else:
                out = model(image)
        assert tuple(out.shape[-2:]) == (height, width), out.shape
        return time.perf_counter() - start

    first = call()
    times = [call() for _ in range(args.runs)]
    return {
        "variant": args.variant,
        "depth": args.depth,
        "image_shape": [height, width],
        "mode": "slide" if args.crop else "whole",
        "crop_size": args.crop,
        "stride": args.stride,
        "first_call_ms": round(1e3 * first, 1),
        "forward_ms": round(1e3 * statistics.median(times), 1),
        "forward_ms_all": [round(1e3 * t, 1) for t in times],
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "threads": args.threads,
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", required=True, help="torch_gffnet.py")
    parser.add_argument("--variant", default="gff_dfp")
    parser.add_argument("--depth", type=int, default=101)
    parser.add_argument("--num_classes", type=int, default=19)
    parser.add_argument("--sizes", default="512x512,1024x1024,1024x2048")
    parser.add_argument("--slide", default="1024x2048:769:513")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json_out", default=None)
    # One setting, in a child process.
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shape:
        print("RESULT " + json.dumps(run_setting(args)))
        return
    settings = [(size, 0, 0) for size in args.sizes.split(",") if size]
    for text in args.slide.split(","):
        if text:
            shape, crop, stride = text.split(":")
            settings.append((shape, int(crop), int(stride)))
    rows = []
    for shape, crop, stride in settings:
        command = [
            sys.executable, __file__, "--peer", args.peer,
            "--variant", args.variant, "--depth", str(args.depth),
            "--num_classes", str(args.num_classes), "--runs", str(args.runs),
            "--threads", str(args.threads), "--shape", shape,
            "--crop", str(crop), "--stride", str(stride),
        ]  # fmt: skip
        output = subprocess.run(
            command, check=True, capture_output=True, text=True
        ).stdout
        row = json.loads(output.split("RESULT ", 1)[1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
