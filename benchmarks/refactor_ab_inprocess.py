"""In-process A/B of issue 9: the original commit's functions against this tree's, called alternately on the
same arrays, so that a shared machine's load hits both alike.

    mkdir -p /tmp/old && git archive 8fcbd3a nucleiseg_lib | tar -x -C /tmp/old && mv /tmp/old/nucleiseg_lib /tmp/old/nucleiseg_old
    OMP_NUM_THREADS=1 python benchmarks/refactor_ab_inprocess.py /tmp/old benchmarks/results/refactor_ab_inprocess.json
"""
import json
import statistics as st
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
import nucleiseg_old.app as old_app  # noqa: E402
from nucleiseg_old.inference import postprocess as old_pp  # noqa: E402
from nucleiseg_lib.app import outline_rgb, measure_nuclei
from nucleiseg_lib.inference import postprocess as new_pp
from refactor_speed import large_label_map, DEFAULT_DATA
img, lab, prob = large_label_map(DEFAULT_DATA)
u8 = (img * 255).astype(np.uint8)
pairs = {
    "label_cc": (lambda: old_pp.label_instances(prob[0], 0.5, None, "cc", 8), lambda: new_pp.label_instances(prob[0], 0.5, None, "cc", 8)),
    "label_watershed": (lambda: old_pp.label_instances(prob[0], 0.5, prob[1], "watershed", 8, 0.5), lambda: new_pp.label_instances(prob[0], 0.5, prob[1], "watershed", 8, 0.5)),
    "otsu": (lambda: old_pp.otsu_threshold(prob[0]), lambda: new_pp.otsu_threshold(prob[0])),
    "measure": (lambda: old_app.measure_nuclei(lab, img, prob[0]), lambda: measure_nuclei(lab, img, prob[0])),
    "outline": (lambda: old_app.outline_rgb(u8, lab, 1), lambda: outline_rgb(u8, lab, 1)),
}
assert (old_pp.label_instances(prob[0], 0.5, prob[1], "watershed", 8, 0.5) == new_pp.label_instances(prob[0], 0.5, prob[1], "watershed", 8, 0.5)).all()
assert (old_app.outline_rgb(u8, lab, 1) == outline_rgb(u8, lab, 1)).all()
res = {}
for name, (fo, fn) in pairs.items():
    fo(); fn()
    to, tn = [], []
    for _ in range(15):
        t = time.perf_counter(); fo(); to.append(time.perf_counter() - t)
        t = time.perf_counter(); fn(); tn.append(time.perf_counter() - t)
    res[name] = dict(before=round(st.median(to), 4), after=round(st.median(tn), 4))
    print(f"{name:16s} before {res[name]['before']:.4f} s  after {res[name]['after']:.4f} s  ratio {res[name]['after'] / res[name]['before']:.2f}", flush=True)
Path(sys.argv[2]).write_text(json.dumps(res, indent=1) + "\n")
