"""Agreement with TinyBenchmark's own evaluators on a seeded random case.

The constants below were produced once with the real TinyBenchmark code, outside this repo:
``ucas-vg/PointTinyBenchmark`` (branch TinyBenchmark), ``maskrcnn_benchmark/.../coco/cocoeval.py``
run as ``evaluate_tiny.py`` runs it (``COCOeval(gt, dt, 'bbox', ignore_uncertain=True,
use_iod_for_ignore=True)`` with ``Params.EVAL_STRANDARD = 'tiny'``; ``stats`` x 100) and
``third/Cityscapes/evaluation/eval_script/eval_MR_multisetup.py`` run as ``cityperson_eval``
runs it (``filter_type='size'``, IoD for ignore, ignore uncertain, IoUs 0.25/0.5/0.75, the MR
of each setup computed as its ``summarize`` does, x 100), on the output of ``seeded_case()``
written to JSON. The only edits to that code were for numpy 2 (``np.float`` -> ``np.float64``,
an integer count for ``np.linspace``). The same comparison, run outside the test suite, over 700
further random cases of this kind (1-160 images, up to 1,100 detections per image), 3 cases of
30 frames x 1,000 detections and the hand-built cases of test_eval_tinyperson.py found no
difference at all: every metric equal to the last bit. (The one exception is deliberate: two
annotations sharing an id, which the reference mis-evaluates; see tinyperson.py.)
"""
from __future__ import annotations

import numpy as np
import pytest

from sspnet_cli.evaluation.protocol import METRIC_KEYS
from sspnet_cli.evaluation.tinyperson import evaluate_tinyperson


def seeded_case(seed: int = 20240611) -> tuple[dict, list[dict]]:
    """40 frames of TinyPerson-like clutter: people of 1-45 px, some in clumps, ignore regions,
    uncertain and crowd flags, ``area`` fields that are not always w*h, integer and fractional
    boxes, tied scores, and a few frames with more than 200 detections."""
    rng = np.random.default_rng(seed)
    images = [{"id": int(i) * 3 + 7, "file_name": f"f{i}.jpg", "width": 640, "height": 512} for i in range(40)]
    anns: list[dict] = []
    dets: list[dict] = []
    for n, im in enumerate(images):
        people: list[list[float]] = []
        for _ in range(int(rng.integers(0, 30))):
            s = float(np.exp(rng.uniform(0.0, np.log(45))))
            a = float(rng.uniform(0.4, 2.5))
            if people and rng.random() < 0.3:
                ref = people[int(rng.integers(len(people)))]
                x, y = ref[0] + rng.normal(0, 4), ref[1] + rng.normal(0, 4)
            else:
                x, y = rng.uniform(0, 300), rng.uniform(0, 250)
            box = [float(x), float(y), s * np.sqrt(a), s / np.sqrt(a)]
            if n % 2:
                box = [float(round(v)) for v in box]
            people.append(box)
            area = box[2] * box[3]
            if rng.random() < 0.3:
                area = round(area * float(rng.uniform(0.9, 1.1)), 3)
            region = rng.random() < 0.08
            if region:
                box = [box[0], box[1], float(rng.integers(20, 90)), float(rng.integers(20, 90))]
                area = box[2] * box[3]
            anns.append({
                "id": len(anns) + 1, "image_id": im["id"], "category_id": 1, "bbox": box, "area": area,
                "iscrowd": int(rng.random() < 0.04), "ignore": bool(region or rng.random() < 0.05),
                "uncertain": bool(rng.random() < 0.05),
            })
        n_dets = int(rng.integers(0, 320 if n % 7 == 0 else 60))
        for _ in range(n_dets):
            if people and rng.random() < 0.6:
                p = people[int(rng.integers(len(people)))]
                j = rng.normal(0, 0.15 * max(p[2], p[3]), 4)
                box = [p[0] + j[0], p[1] + j[1], max(p[2] + j[2], 0.5), max(p[3] + j[3], 0.5)]
            else:
                s = float(np.exp(rng.uniform(0.0, np.log(50))))
                box = [float(rng.uniform(0, 320)), float(rng.uniform(0, 270)), s, s * float(rng.uniform(0.5, 2))]
            if n % 2:
                box = [float(max(round(v), 0)) for v in box]
            score = float(rng.integers(0, 8)) / 8 if n % 3 == 0 else float(rng.random())
            dets.append({"image_id": im["id"], "category_id": 1, "bbox": [float(v) for v in box], "score": score})
    order = rng.permutation(len(dets))
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    return gt, [dets[i] for i in order]


# Produced by TinyBenchmark's evaluators on seeded_case() (see the module docstring).
REFERENCE: dict[str, float | None] = {
    'AP25_all': 16.995645281367782,
    'AP25_tiny': 17.83981551071646,
    'AP25_tiny1': 20.131316740451105,
    'AP25_tiny2': 14.47883571574469,
    'AP25_tiny3': 16.805467239510847,
    'AP25_small': 35.04859732616442,
    'AP25_reasonable': 10.54140701273878,
    'AP50_all': 10.24248857693745,
    'AP50_tiny': 10.81399735008359,
    'AP50_tiny1': 13.25983130496674,
    'AP50_tiny2': 4.842196985656011,
    'AP50_tiny3': 9.889899969856499,
    'AP50_small': 19.7193611668092,
    'AP50_reasonable': 7.041451739840436,
    'AP75_all': 1.6735271974685157,
    'AP75_tiny': 2.753799689886948,
    'AP75_tiny1': 3.792625219765381,
    'AP75_tiny2': 0.41581660268634096,
    'AP75_tiny3': 0.1594790351518373,
    'AP75_small': 2.4211228009814745,
    'AP75_reasonable': 0.29795236512817125,
    'MR25_all': 79.54101764209766,
    'MR25_tiny': 79.65184239539974,
    'MR25_tiny1': 77.9116134339157,
    'MR25_tiny2': 79.75451978102136,
    'MR25_tiny3': 79.06764783329052,
    'MR25_small': 65.96186429044951,
    'MR50_all': 84.90403598322327,
    'MR50_tiny': 85.9073968789269,
    'MR50_tiny1': 83.91716544768303,
    'MR50_tiny2': 91.34382474298407,
    'MR50_tiny3': 83.23038126891473,
    'MR50_small': 78.86826007165905,
    'MR75_all': 94.66399141778753,
    'MR75_tiny': 95.43651965044472,
    'MR75_tiny1': 93.75423152629048,
    'MR75_tiny2': 97.53896231715461,
    'MR75_tiny3': 97.70829335018861,
    'MR75_small': 93.72200129570679,
}


def test_matches_tinybenchmark_on_seeded_case():
    gt, dets = seeded_case()
    result = evaluate_tinyperson(gt, dets)
    assert set(REFERENCE) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        expected = REFERENCE[key]
        if expected is None:
            assert result.metrics[key] is None, key
        else:
            assert result.metrics[key] == pytest.approx(expected, abs=1e-9), key


SIZES = (529, 1931)  # annotations, detections of seeded_case()


def test_seeded_case_is_stable():
    """The generator must keep producing the data the reference numbers were computed on."""
    gt, dets = seeded_case()
    assert (len(gt["annotations"]), len(dets)) == SIZES
