"""The content model: deterministic training on real mail, model files, the shipped model,
reloading, incremental learning, evaluation and the CLI."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from spamwarden.errors import ModelError
from spamwarden.mail import parse_message
from spamwarden.training.classifier import (
    ContentClassifier,
    ReloadingClassifier,
    default_model_path,
    load_classifier,
)
from spamwarden.training.corpus import Example, deduplicate, read_path
from spamwarden.training.model import (
    SpamModel,
    TrainingParams,
    load_model,
    save_model,
    train_model,
    untrained_model,
)
from tests.conftest import corpus_paths

HAM = (b"From: Alice <alice@lists.example.org>\nTo: dev@lists.example.org\n"
       b"Subject: Re: patch for the build script\n\nThanks, the patch works; I merged it into "
       b"the main branch after running the test suite on the build machine.\n")
SPAM = (b"From: Best Deals <promo88@cheap-pills.example>\nTo: undisclosed-recipients:;\n"
        b"Subject: CHEAP VIAGRA!!! 80% OFF\nContent-Type: text/html\n\n<html><b>BUY NOW</b> "
        b"<a href=\"http://cheap-pills.example/buy\">click here</a> limited offer, free shipping"
        b"</html>\n")

SMALL = TrainingParams(nb_alphas=(0.01,), sgd_alphas=(1e-5,), folds=3)


def _slice(ham: Path, spam: Path, n_ham: int, n_spam: int) -> list[Example]:
    out: list[Example] = []
    for folder, label, n in ((ham, "ham", n_ham), (spam, "spam", n_spam)):
        for i, ex in enumerate(read_path(folder, label)):  # type: ignore[arg-type]
            if i >= n:
                break
            out.append(ex)
    return out


def _collections() -> list[tuple[str, Path, Path]]:
    """Two collections (group name, ham folder, spam folder) for grouped cross-validation:
    SpamAssassin and CSDMC2010 from ../shared, or without it the 2002 and 2003 halves of the
    SpamAssassin corpus from its npm package (CSDMC2010 is not on npm)."""
    corpora = corpus_paths()
    if "csdmc2010" in corpora:
        sa, csdmc = corpora["spamassassin"], corpora["csdmc2010"]
        return [("sa", sa / "ham", sa / "spam"), ("csdmc", csdmc / "ham", csdmc / "spam")]
    data = corpora["spamassassin"] / "package" / "data"
    return [("sa", data / "easy-ham-1", data / "spam-1"), ("sa2", data / "easy-ham-2", data / "spam-2")]


@pytest.fixture(scope="module")
def corpus_slice() -> tuple[list[Example], list[object], list[str]]:
    (g1, ham1, spam1), (g2, ham2, spam2) = _collections()
    first, second = _slice(ham1, spam1, 150, 90), _slice(ham2, spam2, 90, 60)
    examples = first + second
    index = {id(e): g1 for e in first} | {id(e): g2 for e in second}
    kept, views, _ = deduplicate(examples)
    return kept, views, [index[id(e)] for e in kept]


@pytest.fixture(scope="module")
def small_model(corpus_slice: tuple[list[Example], list[object], list[str]]) -> SpamModel:
    kept, views, groups = corpus_slice
    return train_model(views, [e.y for e in kept], groups=groups, params=SMALL)  # type: ignore[arg-type]


def test_training_is_deterministic(
    corpus_slice: tuple[list[Example], list[object], list[str]], small_model: SpamModel
) -> None:
    kept, views, groups = corpus_slice
    again = train_model(views, [e.y for e in kept], groups=groups, params=SMALL)  # type: ignore[arg-type]
    probe = views[:40]
    assert np.array_equal(small_model.predict_proba(probe), again.predict_proba(probe))  # type: ignore[arg-type]
    assert small_model.metadata["metrics"] == again.metadata["metrics"]
    m = small_model.metadata["metrics"]
    assert m["cv_auc"] > 0.95
    assert set(m["by_source"]) == set(groups) and len(set(groups)) == 2
    assert small_model.metadata["params"]["random_state"] == 0


def test_fast_scores_equal_the_pipelines(
    corpus_slice: tuple[list[Example], list[object], list[str]], small_model: SpamModel
) -> None:
    _, views, _ = corpus_slice
    probe = list(views[:25])
    s = small_model.scores(small_model.hashed(probe))  # type: ignore[arg-type]
    nb = small_model.bayes.predict_log_proba(probe)
    assert np.allclose(s[:, 0], np.clip(nb[:, 1] - nb[:, 0], -50, 50))
    assert np.allclose(s[:, 1], small_model.linear.decision_function(probe))
    one = [small_model.spam_probability(v) for v in probe[:5]]  # type: ignore[arg-type]
    assert np.allclose(one, small_model.predict_proba(probe[:5]))  # type: ignore[arg-type]


def test_one_message_path_equals_the_batch_path_with_its_column_memory_full(
    corpus_slice: tuple[list[Example], list[object], list[str]], small_model: SpamModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, views, _ = corpus_slice
    probe = list(views[:40]) + [parse_message(b"Subject: \r\n\r\n")]
    batch = small_model.predict_proba(probe)  # type: ignore[arg-type]
    # a memory far smaller than one message's tokens: it starts over on every message
    monkeypatch.setattr(small_model, "COLUMN_CACHE_SIZE", 50)
    monkeypatch.setattr(small_model, "_columns", {})
    assert np.allclose([small_model.spam_probability(v) for v in probe], batch,  # type: ignore[arg-type]
                       rtol=0, atol=1e-12)
    most = max(len(set(small_model.extractor.tokens(v))) for v in probe)  # type: ignore[arg-type]
    assert len(small_model._columns) <= max(50, most)
    monkeypatch.setattr(small_model, "COLUMN_CACHE_SIZE", 10**6)
    first = [small_model.spam_probability(v) for v in probe]  # type: ignore[arg-type]
    again = [small_model.spam_probability(v) for v in probe]  # type: ignore[arg-type]
    assert first == again and np.allclose(first, batch, rtol=0, atol=1e-12)
    row = small_model.hashed(probe[:1])  # type: ignore[arg-type]
    columns = small_model.columns(small_model.extractor.tokens(probe[0]))  # type: ignore[arg-type]
    assert columns == dict(zip(row.indices.tolist(), row.data.astype(int).tolist()))


def test_model_file_roundtrip_and_metadata(small_model: SpamModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(small_model, path)
    loaded = load_model(path)
    views = [parse_message(HAM), parse_message(SPAM)]
    assert np.allclose(loaded.predict_proba(views), small_model.predict_proba(views))
    md = loaded.metadata
    assert md["format_version"] == 1
    assert {"scikit-learn", "numpy", "scipy", "skops", "python", "spamwarden"} <= set(md["versions"])
    assert md["features_hash"] and md["features"]["strip_headers"]
    assert "cv_auc" in md["metrics"]
    assert isinstance(loaded, ContentClassifier)


def test_shipped_model_loads_and_scores() -> None:
    assert os.path.getsize(default_model_path()) < 5_000_000
    clf = load_classifier(None)
    assert clf is not None and isinstance(clf, ContentClassifier)
    assert load_classifier("").spam_probability(parse_message(HAM)) < 0.5
    p_ham = clf.spam_probability(parse_message(HAM))
    p_spam = clf.spam_probability(parse_message(SPAM))
    assert 0.0 <= p_ham < 0.5 < p_spam <= 1.0
    md = load_model(default_model_path()).metadata
    assert md["corpus"]["n_ham"] > 5000 and md["corpus"]["n_spam"] > 2000


def test_load_classifier_from_config(tmp_path: Path, small_model: SpamModel) -> None:
    from spamwarden.config import Config, TrainingConfig

    path = tmp_path / "m.skops"
    save_model(small_model, path)
    clf = load_classifier(Config(training=TrainingConfig(model=str(path))))
    assert isinstance(clf, ReloadingClassifier)
    assert isinstance(load_classifier(Config()), SpamModel)
    with pytest.raises(ModelError, match="does not exist"):
        load_classifier(Config(training=TrainingConfig(model=str(tmp_path / "none.skops"))))


def test_leaking_headers_score_the_same(small_model: SpamModel) -> None:
    leaks = (b"X-Spam-Status: Yes, score=30\nX-Spam-Flag: YES\nX-Barracuda-Spam-Status: Yes\n"
             b"Received-SPF: pass\nAuthentication-Results: mx.google.com; dkim=pass\n"
             b"X-Mozilla-Status: 0001\nDelivered-To: x@gmail.com\nX-Gmail-Labels: Spam\n")
    for raw in (HAM, SPAM):
        a = small_model.spam_probability(parse_message(raw))
        b = small_model.spam_probability(parse_message(leaks + raw))
        assert a == b


def test_corrupt_model_file_is_refused(small_model: SpamModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(small_model, path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.skops"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_model(truncated)
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(ModelError, match="corrupt"):
        load_model(garbage)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.skops")


def _rewrite_metadata(src: Path, dst: Path, change: dict[str, object]) -> None:
    """Copy a model file with its metadata edited (as another version would have written it)."""
    import skops.io as sio

    obj = sio.load(src, trusted=sio.get_untrusted_types(file=src))
    md = json.loads(obj["metadata"])
    for key, value in change.items():
        if key == "format_version":
            obj["format_version"] = value
        elif key == "sklearn":
            md["versions"]["scikit-learn"] = value
        else:
            md[key] = value
    obj["metadata"] = json.dumps(md)
    sio.dump(obj, dst, compression=zipfile.ZIP_DEFLATED)


def test_foreign_version_model_file_is_refused(small_model: SpamModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(small_model, path)
    old_sklearn = tmp_path / "old.skops"
    _rewrite_metadata(path, old_sklearn, {"sklearn": "0.24.2"})
    with pytest.raises(ModelError, match=r"scikit-learn 0\.24\.2.*retrain"):
        load_model(old_sklearn)
    future = tmp_path / "future.skops"
    _rewrite_metadata(path, future, {"format_version": 99})
    with pytest.raises(ModelError, match="format version 99"):
        load_model(future)
    other_features = tmp_path / "features.skops"
    _rewrite_metadata(path, other_features, {"features_hash": "0000"})
    with pytest.raises(ModelError, match="feature settings"):
        load_model(other_features)


def test_model_file_of_older_features_is_refused(small_model: SpamModel, tmp_path: Path) -> None:
    """A file as features version 2 wrote it (no structure_weight, its own consistent hash)."""
    import skops.io as sio

    from spamwarden.training.features import settings_hash

    path = tmp_path / "m.skops"
    save_model(small_model, path)
    obj = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    md = json.loads(obj["metadata"])
    md["features"]["version"] = 2
    del md["features"]["structure_weight"]
    md["features_hash"] = settings_hash(md["features"])
    obj["metadata"] = json.dumps(md)
    for pipeline in (obj["bayes"], obj["linear"]):
        vars(pipeline.named_steps["features"]).pop("structure_weight", None)
    old = tmp_path / "v2.skops"
    sio.dump(obj, old, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelError, match=r"feature settings version 2; .* version 3: retrain"):
        load_model(old)


def test_trained_models_weigh_structure_and_online_models_do_not(small_model: SpamModel) -> None:
    assert small_model.extractor.structure_weight == 3
    assert small_model.metadata["features"]["structure_weight"] == 3
    online = untrained_model()
    assert online.extractor.structure_weight == 1 and online.extractor.distinct
    tokens = online.extractor.tokens(parse_message(SPAM))
    assert len(tokens) == len(set(tokens))
    assert not small_model.extractor.distinct


def test_online_margin_skips_confidently_right_messages() -> None:
    online = untrained_model()
    view = parse_message(SPAM)
    for _ in range(50):
        online.learn([view], [1])
        z = online.scores(online.hashed([view]))[0, 1]
        if z > online.metadata["params"]["online_margin"]:
            break
    assert z > online.metadata["params"]["online_margin"]
    online.learn([view], [1])
    assert online.scores(online.hashed([view]))[0, 1] == z  # nothing left to learn
    online.learn([view], [0])
    assert online.scores(online.hashed([view]))[0, 1] < z  # a confident error is learned


def test_untrained_model_learns_with_adagrad_and_trained_with_plain_steps(
    small_model: SpamModel, tmp_path: Path,
) -> None:
    online = untrained_model()
    del online.metadata["params"]["online_margin"]  # learn every message here
    view = parse_message(SPAM)
    before = online.scores(online.hashed([view]))[0, 1]
    online.learn([view], [1])
    first = online.scores(online.hashed([view]))[0, 1] - before
    online.learn([view], [1])
    second = online.scores(online.hashed([view]))[0, 1] - before - first
    assert first > 0 and second > 0
    # the squared gradients seen so far shrink each weight's next step
    assert second < 0.8 * first
    assert online._grad_sq is not None and online._grad_sq.max() > online.ADAGRAD_INITIAL
    # a trained model's feedback steps stay plain SGD (its weights are already in scale)
    save_model(small_model, tmp_path / "m.skops")
    trained = load_model(tmp_path / "m.skops")
    trained.learn([view], [1])
    assert trained._grad_sq is None


def test_foreign_types_are_refused(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "evil.skops"
    sio.dump({"format": "spamwarden-content-model", "x": Path("/etc/passwd")}, path)
    with pytest.raises(ModelError, match="types spamwarden does not load"):
        load_model(path)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reloading_classifier_picks_up_a_new_file(small_model: SpamModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(small_model, path)
    loads: list[str] = []

    def loader(p: str) -> SpamModel:
        loads.append(p)
        return load_model(p)

    clock = _Clock()
    rc = ReloadingClassifier(path, check_interval=5.0, loader=loader, clock=clock)
    view = parse_message(SPAM)
    before = rc.spam_probability(view)
    # a new model: learned the spam as ham many times
    changed = load_model(path)
    changed.learn([view] * 30, [0] * 30)
    save_model(changed, path)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert rc.spam_probability(view) == before  # not checked yet
    assert len(loads) == 1
    clock.now = 6.0
    after = rc.spam_probability(view)
    assert len(loads) == 2 and rc.reloads == 1
    assert after < before
    # a broken file keeps the current model
    path.write_bytes(b"broken")
    rc.request_reload()
    assert rc.spam_probability(view) == after
    assert rc.reloads == 1


def test_incremental_learning_moves_the_score(small_model: SpamModel, tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    save_model(small_model, path)
    model = load_model(path)
    view = parse_message(HAM.replace(b"patch", b"invoice"))
    before = model.spam_probability(view)
    model.learn([view] * 5, [1] * 5)
    assert model.spam_probability(view) > before
    assert model.metadata["learned_online"] == 5


class _FakeSource:
    """FeedbackSource over a list (same Protocol as the Redis reader)."""

    def __init__(self, items: list[tuple[str, str, bytes]]) -> None:
        from spamwarden.training.feedback import FeedbackExample

        self.items = [FeedbackExample(i, lb, raw) for i, lb, raw in items]  # type: ignore[arg-type]

    def read(self, *, after: str = "0", count: int = 500) -> list[object]:
        ids = [x.id for x in self.items]
        start = ids.index(after) + 1 if after in ids else 0
        return self.items[start : start + count]  # type: ignore[return-value]


def test_feedback_learner_learns_each_example_once(small_model: SpamModel, tmp_path: Path) -> None:
    from spamwarden.training.feedback import FeedbackLearner, read_all

    path = tmp_path / "m.skops"
    save_model(small_model, path)
    model = load_model(path)
    source = _FakeSource([(f"e{i}", "spam", SPAM.replace(b"VIAGRA", b"V%d" % i)) for i in range(5)])
    learner = FeedbackLearner(model, source, batch=2)  # type: ignore[arg-type]
    assert learner.poll() == 5
    assert learner.poll() == 0
    source.items += _FakeSource([("e5", "ham", HAM)]).items
    assert learner.poll() == 1
    assert model.metadata["learned_online"] == 6
    assert [x.id for x in read_all(source, batch=4)] == [f"e{i}" for i in range(6)]  # type: ignore[arg-type]


def test_online_protocol_learns_as_it_goes(tmp_path: Path) -> None:
    from spamwarden.training.evaluate import evaluate_online, read_index

    lines = []
    for i in range(30):
        for label, raw in (("ham", HAM), ("spam", SPAM)):
            f = tmp_path / "msgs" / f"{label}{i}.eml"
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(raw.replace(b"Subject: ", b"Subject: %d " % i))
            lines.append(f"{label} msgs/{f.name}")
    (tmp_path / "index").write_text("# arrival order\n" + "\n".join(lines) + "\n")
    entries = read_index(tmp_path / "index")
    metrics, probs = evaluate_online(entries)
    assert probs[0] == pytest.approx(0.5)  # untrained at first
    assert metrics["n_ham"] == 30 and metrics["n_spam"] == 30
    assert metrics["auc"] > 0.95
    assert probs[-1] > 0.5 > probs[-2]


def test_untrained_model_scores_half() -> None:
    m = untrained_model()
    assert m.spam_probability(parse_message(SPAM)) == pytest.approx(0.5)


def test_training_needs_both_classes() -> None:
    with pytest.raises(ModelError, match="at least 2 ham and 2 spam"):
        train_model([parse_message(HAM)] * 3, [0, 0, 0])


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "corpus"
    for label, raw, words in (("ham", HAM, ["build", "merge", "review", "test", "release"]),
                              ("spam", SPAM, ["pills", "casino", "loan", "offer", "winner"])):
        (root / label).mkdir(parents=True)
        for i in range(12):
            body = raw.replace(b"Subject: ", f"Subject: {words[i % 5]} {i} ".encode())
            body += (f"\n{words[(i + 1) % 5]} {words[(i + 2) % 5]} number {i} "
                     f"{'x' * (i + 1)} unique{i}\n").encode()
            (root / label / f"{i:03d}").write_bytes(body)
    yield root


def test_cli_train_eval_json_and_plot(tiny_corpus: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from spamwarden.cli import main

    out = tmp_path / "model.skops"
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    assert main(["train", "--config", str(cfg), "-q", "--ham", str(tiny_corpus / "ham"),
                 "--spam", str(tiny_corpus / "spam"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "model written to" in text and "ROC AUC" in text and "false negatives" in text
    md = load_model(out).metadata
    assert md["corpus"]["n_ham"] == 12 and md["corpus"]["n_spam"] == 12
    png = tmp_path / "roc.png"
    assert main(["eval", "--config", str(cfg), "--model", str(out), "--json", "--plot", str(png),
                 "--corpus", str(tiny_corpus)]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("auc", "fpr_at_threshold", "fnr_at_threshold", "fnr_at_fpr_0_1pct",
                "fnr_at_fpr_1pct", "n_ham", "n_spam"):
        assert key in result
    assert result["n_ham"] == 12 and result["n_spam"] == 12 and result["auc"] > 0.9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = tmp_path / "index"
    index.write_text("".join(f"{lb} corpus/{lb}/{i:03d}\n" for i in range(12)
                             for lb in ("ham", "spam")))
    assert main(["eval", "--config", str(cfg), "--online", str(index), "--json"]) == 0
    online = json.loads(capsys.readouterr().out)
    assert {"auc", "one_minus_auc_pct", "messages_per_s", "fnr_at_fpr_1pct"} <= set(online)


def test_cli_eval_refuses_a_corrupt_model(tiny_corpus: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from spamwarden.cli import main

    bad = tmp_path / "bad.skops"
    bad.write_bytes(b"PK\x03\x04 broken")
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    assert main(["eval", "--config", str(cfg), "--model", str(bad), "--corpus",
                 str(tiny_corpus)]) == 1
    assert "corrupt" in capsys.readouterr().err


def test_single_source_is_validated_forward_in_time() -> None:
    from spamwarden.training.model import _time_folds

    views = []
    labels = []
    for day in range(1, 29):
        for label, raw in ((0, HAM), (1, SPAM)):
            views.append(parse_message(f"Date: {day:02d} Feb 2010 10:00:00 +0000\n".encode()
                                       + raw.replace(b"Subject: ", f"Subject: d{day} ".encode())))
            labels.append(label)
    y = np.array(labels)
    [(train, test)] = _time_folds(views, y)
    assert len(train) == 33 and len(test) == 23
    newest_train = max(int(views[i].header("Date").split()[0]) for i in train)  # type: ignore[union-attr]
    oldest_test = min(int(views[i].header("Date").split()[0]) for i in test)  # type: ignore[union-attr]
    assert newest_train <= oldest_test
    undated = [parse_message(HAM)] * 30 + [parse_message(SPAM)] * 30
    assert _time_folds(undated, np.array([0] * 30 + [1] * 30)) == []
    model = train_model(views, labels, params=SMALL)
    assert model.metadata["metrics"]["forward_in_time"]["n"] == 23


@pytest.mark.parametrize("header", [b"X-Mailer: \xff\r\n", b"User-Agent: Mutt\xa1\r\n",
                                    b"Content-Type: te\xa1xt/plain\r\n"])
def test_a_raw_8bit_octet_in_a_header_does_not_turn_the_classifier_off(header: bytes) -> None:
    """The parser keeps the octet as a lone surrogate; the header-value tokens carried it
    to the hasher, which raised: the milter then scored the message without the
    classifier (X-Spam-Unavailable), a one-octet way to turn Bayes off."""
    model = load_model(default_model_path())
    raw = (b"From: Deals <deals@promo.example>\r\nSubject: Cheap pills, 90% off\r\n"
           b"MIME-Version: 1.0\r\n")
    body = b"\r\nBuy cheap pills now at http://pills.example.com/buy today only\r\n"
    plain = model.spam_probability(parse_message(raw + b"Content-Type: text/plain\r\n" + body))
    odd = model.spam_probability(parse_message(raw + header + body))
    assert 0.0 <= odd <= 1.0
    assert abs(odd - plain) < 0.5  # scored, and on the same evidence
