"""The README demo's model: unet-digits trained on the 8x8 digits makes digits a classifier reads.

A logistic-regression classifier trained on real digits scores class-conditional samples (the
label we asked for is the truth). The samples must reach a fixed fraction of the classifier's
accuracy on held-out real digits, and every class must be recognised; an untrained model fails.
Training is shortened from the demo's 1200 steps to 600 (about a minute on 2 cores).
"""

import dataclasses

import numpy as np
import pytest
import torch

import difflab
from difflab.data import get_dataset
from difflab.train import load_run, train
from difflab.train.presets import TRAIN_PRESETS

sklearn = pytest.importorskip("sklearn.linear_model")


@pytest.fixture(scope="module")
def classifier():
    x_tr, y_tr = get_dataset("digits", split="train").tensors()
    x_te, y_te = get_dataset("digits", split="test").tensors()
    clf = sklearn.LogisticRegression(max_iter=2000).fit(x_tr.flatten(1).numpy(), y_tr.numpy())
    return clf, float(clf.score(x_te.flatten(1).numpy(), y_te.numpy()))


def _score(clf, model, cfg) -> tuple[float, int]:
    labels = torch.arange(200) % 10
    x = difflab.sample(model, cfg.schedule, shape=(200, 1, 8, 8), prediction=cfg.prediction,
                       sampler="unipc", steps=20, seed=0, cond=labels, clip_x0=1.0)
    pred = clf.predict(x.flatten(1).numpy())
    return float((pred == labels.numpy()).mean()), len(np.unique(pred))


def test_trained_digits_are_recognised_and_untrained_are_not(classifier, tmp_path):
    clf, real_accuracy = classifier
    assert real_accuracy > 0.9
    cfg = dataclasses.replace(TRAIN_PRESETS["digits"], steps=600, sample_every=0,
                              checkpoint_every=0, progress=False, run_dir=str(tmp_path / "d"))
    run = train(cfg)
    _, _, ema = load_run(run)
    accuracy, classes = _score(clf, ema, cfg)
    assert accuracy >= 0.75 * real_accuracy and classes == 10, (accuracy, real_accuracy)
    untrained = difflab.nets.get_net(cfg.net, num_classes=10).eval()
    bad_accuracy, _ = _score(clf, untrained, cfg)
    assert bad_accuracy < 0.75 * real_accuracy, bad_accuracy
