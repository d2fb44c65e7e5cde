"""The Python peer: the cxr job written the way a Python team would write it, for speed comparison.

It measures, per DICOM file and per stage, what the usual Python stack takes to turn a file into model outputs:

- read: the file's bytes from disk;
- decode: pydicom parses them and decodes the first frame (GDCM for JPEG, JPEG-LS and JPEG 2000, pydicom's
  NumPy decoders for native and RLE data: pydicom's default handler order with python3-gdcm installed);
- preprocess: the manifest v1 contract of shared/DESIGN.md in NumPy, with OpenCV's INTER_AREA resize;
- infer: PyTorch CPU (torch.inference_mode) on torchvision's DenseNet-121 or SqueezeNet 1.1, shaped like the
  shipped models (probabilities and the `cam` output), with the shipped ONNX weights copied in;
- total: wall time of the four.

Commands:
  python3 peer.py serve --model DIR [--threads 2]
      Loads the model once, then reads one JSON request a line on stdin: {"file": PATH} runs that file once and
      answers one JSON line of stage times in ms; {"done": true} answers the peak RSS and exits. The benchmark
      (benchmarks/src/peer-compare.ts) drives it, so that ours and the peer run interleaved in the same run.
  python3 peer.py check --model DIR [--files FILE...]
      Compares the peer's input tensors with shared/reference/<model>/<file>.f32 and its outputs on the reference
      tensors with shared/reference/<model>.probs.json, so we know it does the same work.

Run it with Debian's interpreter (/usr/bin/python3) after benchmarks/peer/setup.sh.
"""

import argparse
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pydicom
import torch
import torchvision
from onnx import numpy_helper
from pydicom.multival import MultiValue
from pydicom.pixel_data_handlers import gdcm_handler
from pydicom.uid import JPEG2000, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, RLELossless

SHARED = Path(__file__).resolve().parents[3] / 'shared'
# shared/README.md's tolerances, in the [0, 1] intensity space: lossy syntaxes max 0.01 and mean 0.001, others 1e-4.
LOSSY_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000}


# ---------------------------------------------------------------------------------------------------------------
# Model: torchvision's architecture, the shipped ONNX file's weights


class DenseNetWithCam(torch.nn.Module):
    """DenseNet-121 with one input channel; `cam` is the classifier applied at every position, probs its mean."""

    def __init__(self, labels):
        super().__init__()
        self.net = torchvision.models.densenet121(weights=None, num_classes=labels)
        self.net.features.conv0 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x):
        features = torch.relu(self.net.features(x))
        weight = self.net.classifier.weight[:, :, None, None]
        cam = torch.nn.functional.conv2d(features, weight, self.net.classifier.bias)
        return torch.sigmoid(cam.mean(dim=(2, 3))), cam


class SqueezeNetWithCam(torch.nn.Module):
    """SqueezeNet 1.1; `cam` is the classifier's ReLU output before global pooling, probs its softmax."""

    def __init__(self, labels):
        super().__init__()
        self.net = torchvision.models.squeezenet1_1(weights=None, num_classes=labels)

    def forward(self, x):
        _, conv, relu, pool = self.net.classifier
        cam = relu(conv(self.net.features(x)))
        return torch.softmax(torch.flatten(pool(cam), 1), dim=1), cam


def onnx_weights(path):
    """The ONNX file's weights under torchvision's parameter names.

    PyTorch's exporter kept the names of most parameters ("net.features..."), folded the BatchNorm that follows a
    convolution into that convolution (unnamed weights, found through the Conv node's output name), deduplicated
    equal constants behind Identity nodes, and left the DenseNet classifier's bias as the input of an Add node.
    Returns (state dict entries, {BatchNorm module name: bias folded into the convolution before it}).
    """
    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Identity' and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    state = {name[len('net.'):]: value for name, value in tensors.items() if name.startswith('net.')}
    folded = {}
    batchnorm_after = {'conv0': 'norm0', 'conv1': 'norm2'}
    for node in graph.node:
        if node.op_type == 'Conv' and not node.input[1].startswith('net.'):
            # '/features/denseblock1/denselayer1/conv1/Conv_output_0' -> 'features.denseblock1.denselayer1.conv1'
            module = '.'.join(node.output[0].strip('/').split('/')[:-1])
            parent, _, conv = module.rpartition('.')
            state[module + '.weight'] = tensors[node.input[1]]
            folded[parent + '.' + batchnorm_after[conv]] = tensors[node.input[2]]
        if node.op_type == 'Add' and node.output[0] == 'cam':
            state['classifier.bias'] = tensors[node.input[1]].reshape(-1)
    return state, folded


def load_model(model_dir):
    manifest = json.loads((Path(model_dir) / 'manifest.json').read_text())
    labels = len(manifest['labels'])
    model = DenseNetWithCam(labels) if manifest['input']['channels'] == 1 else SqueezeNetWithCam(labels)
    weights, folded = onnx_weights(Path(model_dir) / manifest['file'])
    state = model.net.state_dict()
    copied = set()
    for name, value in weights.items():
        state[name].copy_(torch.from_numpy(value.copy()).reshape(state[name].shape))
        copied.add(name)
    for module, bias in folded.items():
        # A BatchNorm that passes values through and adds the folded bias: y = (x - 0) / sqrt((1 - eps) + eps) + b.
        eps = model.net.get_submodule(module).eps
        state[module + '.weight'].fill_(1)
        state[module + '.bias'].copy_(torch.from_numpy(bias.copy()))
        state[module + '.running_mean'].zero_()
        state[module + '.running_var'].fill_(1 - eps)
        copied.update(module + suffix for suffix in ('.weight', '.bias', '.running_mean', '.running_var'))
    missing = [name for name in state if name not in copied and not name.endswith('num_batches_tracked')]
    if missing:
        raise SystemExit(f'{model_dir}: no ONNX weights for {missing[:5]}')
    model.net.load_state_dict(state)
    return manifest, model.eval()


# ---------------------------------------------------------------------------------------------------------------
# Decode and preprocess: shared/DESIGN.md, model manifest v1, steps 1 to 8


def decode(data):
    """Parses the bytes and decodes the first frame; headerless ACR-NEMA files are read as implicit VR LE."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if 'TransferSyntaxUID' not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    pixels = ds.pixel_array
    if int(ds.get('NumberOfFrames', 1) or 1) > 1:
        pixels = pixels[0]
    return ds, pixels


def decoder_name(ds):
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        return 'pydicom (numpy)'
    if syntax == RLELossless:
        return 'pydicom rle (numpy)'
    return f'GDCM {gdcm_handler.gdcm.Version.GetVersion()}'


def stored_values(ds, pixels):
    """Step 1: native words masked to BitsStored at HighBit; decoded samples clamped to the BitsStored range."""
    bits = int(ds.BitsStored)
    signed = int(ds.PixelRepresentation) == 1
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return np.clip(pixels, low, high).astype(np.float64)
    allocated = int(ds.BitsAllocated)
    words = pixels.astype(np.int64) & ((1 << allocated) - 1)
    values = (words >> (int(ds.HighBit) + 1 - bits)) & ((1 << bits) - 1)
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.astype(np.float64)


def first_number(value):
    if value is None:
        return None
    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def to_unit_range(ds, v, mode):
    """Step 3: bits, window (LINEAR, LINEAR_EXACT, SIGMOID, else the VOI LUT Sequence), or min-max."""
    if mode == 'bits':
        return np.clip(v / (2 ** int(ds.BitsStored) - 1), 0, 1)
    if mode == 'window':
        center, width = first_number(ds.get('WindowCenter')), first_number(ds.get('WindowWidth'))
        function = str(ds.get('VOILUTFunction', 'LINEAR') or 'LINEAR').upper()
        if center is not None and width is not None and (width >= 1 if function == 'LINEAR' else width > 0):
            if function == 'SIGMOID':
                return 1 / (1 + np.exp(-4 * (v - center) / width))
            if function == 'LINEAR_EXACT':
                return np.clip((v - center) / width + 0.5, 0, 1)
            return np.clip((v - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
        if 'VOILUTSequence' in ds and len(ds.VOILUTSequence) > 0:
            item = ds.VOILUTSequence[0]
            entries, first, bits = (int(x) for x in item.LUTDescriptor)
            entries = entries or 65536
            table = np.frombuffer(item.LUTData, dtype=np.uint16) if isinstance(item.LUTData, bytes) else np.asarray(item.LUTData)
            index = np.clip(np.round(v), first, first + entries - 1).astype(np.int64) - first
            return table[index] / (2 ** bits - 1)
    low, high = float(v.min()), float(v.max())
    return (v - low) / (high - low) if high > low else np.zeros_like(v)


def preprocess(ds, pixels, spec):
    """Steps 1 to 8: the float32 C x H x W input tensor. Steps 1 to 7 in float64, as the contract says: float32 on
    the way moves values within 1e-6 of a rounding tie of step 7 to its other side."""
    v = stored_values(ds, pixels)
    slope, intercept = first_number(ds.get('RescaleSlope')), first_number(ds.get('RescaleIntercept'))
    if (slope is not None and slope != 1) or (intercept is not None and intercept != 0):
        v = v * (slope if slope is not None else 1) + (intercept or 0)
    v = to_unit_range(ds, v, spec['intensity'])
    if ds.PhotometricInterpretation == 'MONOCHROME1':
        v = 1 - v
    if spec['crop'] == 'center-square':
        rows, columns = v.shape
        side = min(rows, columns)
        top, left = (rows - side) // 2, (columns - side) // 2
        v = v[top:top + side, left:left + side]
    height, width = spec['height'], spec['width']
    shrinking = v.shape[0] >= height and v.shape[1] >= width
    interpolation = cv2.INTER_AREA if spec['resize'] == 'area' and shrinking else cv2.INTER_LINEAR
    v = cv2.resize(np.ascontiguousarray(v, dtype=np.float64), (width, height), interpolation=interpolation)
    if spec['quantize'] == 8:
        v = np.round(v * 255) / 255
    normalize = spec['normalize']
    if 'scale' in normalize:
        planes = [v * normalize['scale'] + normalize['offset']] * spec['channels']
    else:
        planes = [(v - m) / s for m, s in zip(normalize['mean'], normalize['std'])]
    return np.stack(planes).astype(np.float32)


def infer(model, tensor):
    with torch.inference_mode():
        probs, cam = model(torch.from_numpy(tensor)[None])
    return probs[0].numpy(), cam[0].numpy()


# ---------------------------------------------------------------------------------------------------------------
# Commands


def run_once(model, manifest, path):
    start = time.perf_counter()
    data = Path(path).read_bytes()
    t_read = time.perf_counter()
    ds, pixels = decode(data)
    t_decode = time.perf_counter()
    tensor = preprocess(ds, pixels, manifest['input'])
    t_preprocess = time.perf_counter()
    infer(model, tensor)
    end = time.perf_counter()
    ms = lambda a, b: round((b - a) * 1000, 3)
    return {
        'file': os.path.basename(path), 'decoder': decoder_name(ds),
        'read': ms(start, t_read), 'decode': ms(t_read, t_decode), 'preprocess': ms(t_decode, t_preprocess),
        'infer': ms(t_preprocess, end), 'total': ms(start, end),
    }


def versions():
    return {
        'python': sys.version.split()[0], 'torch': torch.__version__, 'torchvision': torchvision.__version__,
        'pydicom': pydicom.__version__, 'gdcm': gdcm_handler.gdcm.Version.GetVersion(), 'opencv': cv2.__version__,
        'numpy': np.__version__,
    }


def serve(args):
    torch.set_num_threads(args.threads)
    manifest, model = load_model(args.model)
    # One pass over a blank input so that the first timed file does not pay for PyTorch's lazy set-up.
    infer(model, np.zeros((manifest['input']['channels'], manifest['input']['height'], manifest['input']['width']), np.float32))
    print(json.dumps({'ready': True, 'threads': torch.get_num_threads(), **versions()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get('done'):
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(json.dumps({'maxRssKiB': peak_kib}), flush=True)
            return
        print(json.dumps(run_once(model, manifest, request['file'])), flush=True)


def shared_files():
    dicom = SHARED / 'dicom'
    return sorted([*dicom.glob('*.dcm'), *(dicom / 'derived').glob('*.dcm')], key=lambda p: p.name)


def check(args):
    """Peer tensors against the reference tensors, and peer outputs on the reference tensors against the reference."""
    manifest, model = load_model(args.model)
    name = manifest['name']
    spec = manifest['input']
    expected_probs = json.loads((SHARED / 'reference' / f'{name}.probs.json').read_text())
    files = [Path(f) for f in args.files] if args.files else shared_files()
    # Differences are judged in the [0, 1] intensity space, before normalisation, as shared/README.md does.
    normalize = spec['normalize']
    to_unit = np.float32(1 / normalize['scale']) if 'scale' in normalize else np.asarray(normalize['std'], np.float32)[:, None, None]
    worst_probs = 0.0
    for path in files:
        reference = np.fromfile(SHARED / 'reference' / name / f'{path.name}.f32', dtype='<f4').reshape(spec['channels'], spec['height'], spec['width'])
        ds, pixels = decode(path.read_bytes())
        difference = np.abs(preprocess(ds, pixels, spec) - reference) * to_unit
        probs, _ = infer(model, reference)
        probs_difference = float(np.max(np.abs(probs - np.asarray(expected_probs[path.name]))))
        worst_probs = max(worst_probs, probs_difference)
        lossy = ds.file_meta.TransferSyntaxUID in LOSSY_SYNTAXES
        max_abs, mean_abs = float(difference.max()), float(difference.mean())
        within = max_abs <= 0.01 and mean_abs <= 0.001 if lossy else max_abs <= 1e-4
        print(json.dumps({
            'file': path.name, 'decoder': decoder_name(ds), 'lossy': lossy, 'withinTolerance': within,
            'tensorMaxAbs': max_abs, 'tensorMeanAbs': mean_abs, 'valuesOver1e-4': int((difference > 1e-4).sum()),
            'probsMaxAbsOnReferenceTensor': probs_difference,
        }), flush=True)
    print(json.dumps({'model': name, 'files': len(files), 'worstProbsMaxAbs': worst_probs, **versions()}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    serve_parser = commands.add_parser('serve', help='answer timing requests on stdin (driven by peer-compare.ts)')
    serve_parser.add_argument('--model', required=True)
    serve_parser.add_argument('--threads', type=int, default=2)
    check_parser = commands.add_parser('check', help='compare tensors and outputs with shared/reference')
    check_parser.add_argument('--model', required=True)
    check_parser.add_argument('--files', nargs='*')
    args = parser.parse_args()
    serve(args) if args.command == 'serve' else check(args)


if __name__ == '__main__':
    main()
