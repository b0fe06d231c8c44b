"""The upstream examples users start from, run as their authors wrote them plus augshift's documented change.

* transformers' ``run_image_classification.py`` with ``Trainer`` -> ``AugShiftTrainer`` (the import and the class
  name: two lines) trains and evaluates under ``torchrun --nproc_per_node 2`` and reports exactly the consistency a
  single process reports for the saved model.
* Accelerate's ``cv_example.py`` with the README's "Add AugShift to your own loop" lines evaluates on 2 processes
  exactly as on 1.

Besides the documented change, the tests only scale the scripts down (a random-init model instead of hub weights,
small images, one epoch), as a CPU allows.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from PIL import Image

pytestmark = pytest.mark.slow

TRAINER_CHANGE = [  # the whole change a user of run_image_classification.py makes
    ("from transformers.trainer_utils import get_last_checkpoint\n",
     "from transformers.trainer_utils import get_last_checkpoint\n"
     "from augshift.integrations.transformers import AugShiftTrainer\n"),
    ("    trainer = Trainer(\n", "    trainer = AugShiftTrainer(\n"),
]

RECIPE_CHANGE = [  # the README recipe's lines, in cv_example.py
    ("from accelerate.utils import set_seed\n",
     "from accelerate.utils import set_seed\n\nfrom augshift import AugShift, ShiftConsistency\n"
     "from augshift.distributed import average_buffers\n"),
    ('        return {"image": image, "label": label}\n',
     '        return {"image": image, "label": label, "index": idx}\n'),
    ("    # Freezing the base model\n    for param in model.parameters():\n        param.requires_grad = False\n"
     "    for param in model.get_classifier().parameters():\n        param.requires_grad = True\n", ""),
    ("    model, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(\n"
     "        model, optimizer,",
     "    augshift = AugShift(model, max_shift=4)\n"
     "    augshift, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(\n"
     "        augshift, optimizer,"),
    ('            outputs = model(inputs)\n            loss = torch.nn.functional.cross_entropy(outputs, batch["label"])\n',
     '            loss = augshift(inputs, batch["label"])["loss"]\n'),
]
RECIPE_EVALUATION = (  # cv_example's evaluation loop, replaced by the README's
    "        average_buffers(model)\n"
    "        model.eval()\n"
    "        metric = ShiftConsistency(max_shift=4)\n"
    "        for _, batch in enumerate(eval_dataloader):\n"
    "            batch = {k: v.to(accelerator.device) for k, v in batch.items()}\n"
    '            inputs = (batch["image"] - mean) / std\n'
    '            metric.update(model, inputs, batch["label"], batch["index"])\n'
    "        report = metric.compute()\n"
    '        accelerator.print(f"epoch {epoch}: accuracy {report.accuracy} consistency {report.to_dict()}")\n'
)
CV_SCALE = [  # a CPU-sized run: a random-init normaliser-free ResNet (no BatchNorm buffers), learning rate 0 so that
    # 1 and 2 processes evaluate the same weights, small images
    ('create_model("resnet50d", pretrained=True,', 'create_model("nf_resnet26", pretrained=False,'),
    ('config = {"lr": 3e-2, "num_epochs": 3, "seed": 42, "batch_size": 64, "image_size": 224}',
     'config = {"lr": 0.0, "num_epochs": 1, "seed": 42, "batch_size": 4, "image_size": 32}'),
]


def edited(text: str, changes: list[tuple[str, str]]) -> str:
    for old, new in changes:
        assert text.count(old) == 1, f"the upstream script no longer holds {old!r}"
        text = text.replace(old, new)
    return text


def images(folder: Path, count: int, *, seed: int) -> list[np.ndarray]:
    """``count`` 32 x 32 images of a random colour with a square of another one somewhere: predictions vary between
    images and with shifts, so that consistency is not 100 % by construction."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for _ in range(count):
        pixels = np.empty((32, 32, 3), dtype=np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        top, left = rng.integers(0, 24, 2)
        pixels[top:top + 8, left:left + 8] = rng.integers(0, 256, 3)
        made.append(pixels)
    return made


def launch(args: list[str], *, processes: int, cwd: Path) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                str(free_port())] if processes > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=900, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def test_transformers_example_with_two_changed_lines_reports_one_process_numbers_on_two(upstream_dir, tmp_path):
    import torch
    import transformers

    script_dir = tmp_path / "script"
    shutil.copytree(upstream_dir / "transformers", script_dir)  # with evaluate's accuracy module, read offline
    script = script_dir / "run_image_classification.py"
    script.write_text(edited(script.read_text(), TRAINER_CHANGE))
    # 15 validation images: 2 processes pad the last batch. Seeds fixed per folder (not hash(), which varies per run).
    for split_number, (split, per_class) in enumerate((("train", 8), ("validation", 5))):
        for label_number, label in enumerate(("cat", "dog", "fox")):
            seed = 10 * split_number + label_number
            for i, pixels in enumerate(images(tmp_path / "data" / split / label, per_class, seed=seed)):
                Image.fromarray(pixels).save(tmp_path / "data" / split / label / f"{i}.png")
    torch.manual_seed(0)
    model = transformers.ResNetForImageClassification(transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3))
    with torch.no_grad():  # a random classifier large enough that predictions differ between images
        model.classifier[1].weight.normal_(0, 30)
    model.save_pretrained(tmp_path / "resnet")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "resnet")
    common = ["--train_dir", str(tmp_path / "data" / "train"), "--validation_dir", str(tmp_path / "data" / "validation"),
              "--use_cpu", "--report_to", "none", "--remove_unused_columns", "False", "--per_device_eval_batch_size", "4",
              "--seed", "1", "--do_eval"]
    launch([str(script), *common, "--model_name_or_path", str(tmp_path / "resnet"), "--output_dir", str(tmp_path / "two"),
            "--do_train", "--num_train_epochs", "1", "--per_device_train_batch_size", "4"], processes=2, cwd=script_dir)
    launch([str(script), *common, "--model_name_or_path", str(tmp_path / "two"), "--output_dir", str(tmp_path / "one")],
           processes=1, cwd=script_dir)
    two, one = (json.loads((tmp_path / name / "eval_results.json").read_text()) for name in ("two", "one"))
    keys = ["eval_accuracy", "eval_shift_consistency", "eval_shift_consistency_circular"]
    assert {k: two[k] for k in keys} == {k: one[k] for k in keys}
    assert 0.0 < one["eval_shift_consistency"] < 1.0  # a rate, and not 1 by construction
    assert (one["eval_shift_consistency"] * 15) == pytest.approx(round(one["eval_shift_consistency"] * 15))  # of 15
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"  # as plain Trainer saves it
    trained = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "two")
    assert not torch.equal(trained.classifier[1].weight, model.classifier[1].weight)  # it trained


def test_accelerate_cv_example_with_the_readme_recipe_evaluates_on_two_processes_as_on_one(upstream_dir, tmp_path):
    source = (upstream_dir / "accelerate" / "cv_example.py").read_text()
    evaluation = re.search(r"        model\.eval\(\)\n        accurate = 0\n.*?accelerator\.print\([^\n]*\n", source, re.S)
    assert evaluation, "cv_example.py's evaluation loop changed"
    script = tmp_path / "cv_example.py"
    script.write_text(edited(edited(source.replace(evaluation.group(0), RECIPE_EVALUATION), RECIPE_CHANGE), CV_SCALE))
    data = tmp_path / "pets"
    for label in ("beagle", "persian"):
        for i, pixels in enumerate(images(data, 25, seed=len(label))):
            Image.fromarray(pixels).save(data / f"{label}_{i}.jpg")
    outputs = [launch([str(script), "--data_dir", str(data), "--cpu"], processes=n, cwd=tmp_path) for n in (1, 2)]
    lines = [re.findall(r"^epoch 0: .*$", out, re.M) for out in outputs]
    assert lines[0] and lines[0] == lines[1]  # printed once (main process), the same numbers
    assert "'samples': 10" in lines[0][0]  # 20 % of 50 images, each counted once although 2 x 4 does not divide 10
    consistency = float(re.search(r"'consistency_random': ([0-9.]+)", lines[0][0]).group(1))
    assert 0 <= consistency <= 100  # (a random-init nf_resnet26 predicts one class here: the count is what is tested)
